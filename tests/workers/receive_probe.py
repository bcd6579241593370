"""Run in a process of its own (importing Locust patches it with gevent): the worker's real ``measure``
with Locust's FastHttpSession sends streamed requests to the mock at ``argv[1]``, one at a time, and
prints per request what it measured as JSON. ``argv[3] == "busy"`` keeps the event loop busy: a
greenlet spins the CPU for ``BUSY_MS`` without yielding, again and again, as a loaded worker would."""

from __future__ import annotations

import json
import sys
import time

import gevent
import greenlet
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from loadbench.protocol.dialect import LLMRequest, Message
from loadbench.protocol.openai import OPENAI
from loadbench.workers import sockets
from loadbench.workers.stream import measure

BUSY_MS = 12


def _hog(until_s: float) -> None:
    while time.monotonic() < until_s:
        spin_until = time.perf_counter() + BUSY_MS / 1000
        while time.perf_counter() < spin_until:
            pass
        gevent.sleep(0.003)


class _SwitchesBeforeSend:
    """Counts the times the measuring greenlet gave way to another before its request's ``sendall``
    (each one a wait behind the rest of the event loop's work, inside the send delay)."""

    def __init__(self) -> None:
        self.counting: greenlet.greenlet | None = None
        self.count = 0
        send = sockets.StampedSocket.sendall

        def sendall(sock: sockets.StampedSocket, data: object, flags: int = 0) -> None:
            self.counting = None
            send(sock, data, flags)
        sockets.StampedSocket.sendall = sendall  # type: ignore[method-assign]
        greenlet.settrace(self._trace)

    def _trace(self, event: str, args: tuple) -> None:
        if event in ("switch", "throw") and args[0] is self.counting:
            self.count += 1

    def start(self) -> None:
        self.counting, self.count = greenlet.getcurrent(), 0


def main(base_url: str, count: int, mode: str, stream: bool) -> None:
    sockets.install()  # as a worker does: its connections stamp their sends and the client's own reads
    switches = _SwitchesBeforeSend()
    session = FastHttpSession(base_url, request_event=Environment().events.request, user=None)
    hog = gevent.spawn(_hog, time.monotonic() + 120) if mode == "busy" else None
    out = []
    for _ in range(count):
        wire = OPENAI.request(LLMRequest("mock", (Message("user", "what?"),), max_tokens=8, stream=stream), "k")
        switches.start()
        m = measure(session, wire.path, wire.body, wire.headers, stream=stream, timeout_s=10.0)
        out.append({"outcome": m.outcome, "sent": m.sent_ns, "first_byte": m.first_byte_ns,
                    "times": m.token_times_ns, "reads": m.read_times_ns, "end": m.end_ns,
                    "read_end": m.read_end_ns, "stamping": m.stamping, "stamped": m.stamped_chunks,
                    "started": m.started_ns, "send_stamped": m.send_stamped,
                    "switches_before_send": switches.count})
    if hog is not None:
        hog.kill()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "stream")
