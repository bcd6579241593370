"""The Locust user: one closed-loop stream after another (open-loop users take arrival slots)."""

from __future__ import annotations

import time
from typing import Any

import gevent
import orjson
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from loadbench.workers import state
from loadbench.workers.backoff import Backoff, sleep_unless
from loadbench.workers.stream import measure

CONNECTION_ERROR_BACKOFF_S = 0.25  # an unreachable target must not turn into a hot loop


class LLMUser(FastHttpUser):
    host = "http://127.0.0.1"  # replaced from the run plan before any user spawns
    wait_time = constant(0)
    concurrency = 1  # one connection per user: a user is one stream at a time
    connection_timeout = 10.0
    # No per-read socket timeout: gevent would build a Timeout object for every recv (measurably
    # costly at thousands of chunks/s); each request has one overall deadline instead (timeout_s).
    network_timeout = None  # type: ignore[assignment]
    insecure = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backoff = Backoff()

    @task
    def one_request(self) -> None:
        rt = state.RUNTIME
        if rt is None or not rt.quota_left():
            gevent.sleep(0.2)
            return
        slot = rt.take_slot() if rt.open_loop else None
        if rt.open_loop and (slot is None or rt.draining):
            gevent.sleep(0.5)  # the schedule is over; the master ends the run
            return
        spec = rt.next_request()
        started_ns = time.perf_counter_ns()
        headers = rt.headers
        if spec.metadata:
            headers = {**headers, "X-Loadbench-Metadata": orjson.dumps(spec.metadata).decode()}
        try:
            m = measure(self.client, rt.base_path + spec.path, spec.body, headers,
                        stream=rt.profile.stream, timeout_s=rt.timeout_s)
        except BaseException:
            # killed mid-request: the run stopped before this request finished (after the drain)
            rt.record_interrupted(spec, slot if slot is not None else started_ns)
            raise
        wait_s = self.backoff.after(m.status, m.headers.get("retry-after"), time.time())
        # Closed loop: the intended start is the send time (queue = 0 by definition).
        rt.finish(spec, m, slot if slot is not None else m.sent_ns, backoff_s=wait_s)
        if wait_s:
            sleep_unless(wait_s, lambda: rt.draining, gevent.sleep)
        elif m.outcome == "connection_error":
            gevent.sleep(CONNECTION_ERROR_BACKOFF_S)
