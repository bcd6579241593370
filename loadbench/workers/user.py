"""The Locust user: one closed-loop stream after another (open-loop users take arrival slots).

A ramp-down stops surplus users gracefully (the master sets Locust's ``stop_timeout``, see
``shape.ramp_down_grace_s``): a stopped user finishes the request it is in, recorded as usual in the
stage it started in, and starts no new one. The end of the run stops every user at once (after the
master's drain), so what is still in flight then is recorded as ``interrupted``.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
import orjson
from gevent.pool import Group
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser
from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_STOPPING

from loadbench.outcomes import CONNECTION_ERROR
from loadbench.workers import state
from loadbench.workers.backoff import Backoff, sleep_unless
from loadbench.workers.session import run_session
from loadbench.workers.stream import Measured, measure

# Users a ramp-down stopped that are still finishing their last request. They are out of the
# runner's count already, so a later ramp counts only the users that will go on (a ramp-up takes
# these back first, see LLMUser.start).
LEAVING = Group()


def cut_leaving() -> None:
    """The end of the run: stop at once the users still finishing a request after a ramp-down
    (recorded as ``interrupted``, like every other request the drain left in flight)."""
    LEAVING.kill(block=True)


def stale_connection(m: Measured) -> bool:
    """The request found its pooled connection already closed by the server, before any answer (a
    refused or reset connection is not this: the target is gone)."""
    return m.outcome == CONNECTION_ERROR and m.status == 0 and (m.error or "").startswith("HTTPConnectionClosed")


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

    def start(self, group: Group) -> Any:
        """Locust's start of a new user. A ramp-up while users are still finishing their last
        request after a ramp-down takes one of them back instead (it simply goes on): the streams in
        flight never exceed the plan's users, and none is cut. This new instance is then unused."""
        back = next((g for g in LEAVING if not g.dead), None)
        if back is None:
            return super().start(group)
        user: LLMUser = back.args[0]  # Locust spawns each user's greenlet as run_user(user)
        LEAVING.discard(back)
        user._state = LOCUST_STATE_RUNNING
        user._group = group
        group.add(back)
        return back

    def stop(self, force: bool = False) -> bool:
        """Locust's stop. A graceful one (a ramp-down) marks the user stopping, so it starts no new
        request, and takes it out of the runner's group at once: Locust would otherwise count it as
        running until its request ends, so a ramp-up meanwhile would spawn too few users and a
        further step down that picked a user not already stopping would stop too many. Locust still
        waits for it (and kills it after ``stop_timeout``) through its own stop group."""
        if force or self._state != LOCUST_STATE_RUNNING:
            return bool(super().stop(force=force))
        self._state = LOCUST_STATE_STOPPING
        self._group.discard(self._greenlet)
        LEAVING.add(self._greenlet)
        return False

    def _stopping(self) -> bool:
        return self._state == LOCUST_STATE_STOPPING

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
        if rt.sessions is not None:
            run_session(self.client, rt, slot, self._stopping)
            return
        spec = rt.next_request()
        started_ns = time.perf_counter_ns()
        headers = rt.headers
        if spec.metadata:
            headers = {**headers, "X-Loadbench-Metadata": orjson.dumps(spec.metadata).decode()}
        headers = rt.headers_for(spec, headers)
        try:
            m = measure(self.client, rt.base_path + spec.path, spec.body, headers,
                        stream=rt.profile.stream, timeout_s=rt.timeout_s, dialect=rt.dialect)
            if stale_connection(m):
                # the server closed the kept-alive connection after its last reply (llama.cpp's
                # server does after every stream while answering keep-alive) and this request met
                # the closed socket before any answer: the server never saw it, so it is sent once
                # more on a fresh connection, as HTTP clients do; its intended start is unchanged
                m = measure(self.client, rt.base_path + spec.path, spec.body, headers,
                            stream=rt.profile.stream, timeout_s=rt.timeout_s, dialect=rt.dialect)
        except BaseException:
            # killed mid-request: the run stopped before this request finished (after the drain), or
            # a ramp-down's stop_timeout ran out first
            rt.record_interrupted(spec, slot if slot is not None else started_ns)
            raise
        # a refused connection backs off like a 503: an unreachable target must not turn into a hot
        # loop, and the wait is recorded on the sample like any other backoff
        # an error event in a stream stands for its status (throttling 429, overloaded 529): it backs off alike
        wait_s = self.backoff.after(m.error_status or m.status, m.headers.get("retry-after"), time.time(),
                                    no_answer=m.outcome == CONNECTION_ERROR)
        rt.finish(spec, m, slot, backoff_s=wait_s)
        if wait_s:
            # a stopping user leaves now: its wait only spaced out a next request
            sleep_unless(wait_s, lambda: rt.draining or self._stopping(), gevent.sleep)
