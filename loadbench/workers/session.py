"""One user running one multi-turn session: turn after turn on its own connection, each turn carrying the
conversation so far, the session id in ``session_header``, think time between turns.

Live mode sends the model's own answers back: the answer text is kept by ``TextKeeper``, a wrapper of
the run's dialect that records the text of every content event its decoder (or whole-body decode)
returns, so the timed read loop is the one every request uses. A turn that fails ends its session
(there is no answer to continue from); the end of the run or a ramp-down ends it between turns.
Turn 1's intended start is the arrival slot (open loop) or its send; later turns start after their
think time, so their intended start is their send: the think time is the user's, not the server's.
"""

from __future__ import annotations

import time
from typing import Any, cast

import gevent
import orjson

from loadbench.outcomes import OK
from loadbench.protocol.dialect import Answer, Decoded, Dialect
from loadbench.results.collector import SESSIONS_STARTED
from loadbench.workers.backoff import sleep_unless
from loadbench.workers.runtime import WorkerRuntime
from loadbench.workers.stream import measure


class _KeepingDecoder:
    def __init__(self, inner: Any, parts: list[str]) -> None:
        self._inner = inner
        self._parts = parts

    def feed(self, chunk: bytes, end_of_stream: bool = False) -> Decoded:
        fed: Decoded = self._inner.feed(chunk, end_of_stream)
        self._parts.extend(c.text for c in fed.content if c.channel == "answer")
        return fed


class TextKeeper:
    """The run's dialect, keeping the answer text of the response it decodes."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self.parts: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dialect, name)

    def decoder(self) -> _KeepingDecoder:
        return _KeepingDecoder(self._dialect.decoder(), self.parts)

    def decode(self, body: bytes) -> Answer:
        answer = self._dialect.decode(body)
        self.parts.append(answer.text)
        return answer

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _count_start(rt: WorkerRuntime) -> None:
    """Count a session start in the interval it is sent in: the master's live arrival rate of a sessions run
    is sessions a second, and counting first turns only as they finish would lag it by a turn's latency."""
    part = rt.recorder.part(rt.recorder.index_of(time.time_ns()))
    part.counts[SESSIONS_STARTED] = part.counts.get(SESSIONS_STARTED, 0) + 1


def run_session(client: Any, rt: WorkerRuntime, slot: int | None, stopping: Any) -> None:
    """Every turn of one new session (``stopping()``: the user was asked to stop)."""
    sessions = rt.sessions
    assert sessions is not None
    script = sessions.new()
    history: list[dict[str, Any]] = []
    headers = dict(rt.headers)
    if sessions.spec.session_header:
        headers[sessions.spec.session_header] = script.session_id
    for k in range(len(script.users)):
        if k and script.think_s[k] > 0:
            sleep_unless(script.think_s[k], lambda: rt.draining or stopping(), gevent.sleep)
        if k and (rt.draining or stopping() or not rt.quota_left()):
            return
        spec = sessions.turn_request(script, k, history)
        if k == 0:
            _count_start(rt)
        rt.issued += 1
        rt.in_flight += 1
        turn_headers = headers
        if spec.metadata:
            turn_headers = {**headers, "X-Loadbench-Metadata": orjson.dumps(spec.metadata).decode()}
        turn_headers = rt.headers_for(spec, turn_headers)  # a signed protocol (Bedrock) signs each turn
        keeper = TextKeeper(rt.dialect)
        started_ns = time.perf_counter_ns()
        try:
            m = measure(client, rt.base_path + spec.path, spec.body, turn_headers, stream=rt.profile.stream,
                        timeout_s=rt.timeout_s, dialect=cast(Dialect, keeper))
        except BaseException:
            rt.record_interrupted(spec, slot if k == 0 and slot is not None else started_ns)
            raise
        rt.finish(spec, m, slot if k == 0 else None, session=script.session_id,
                  turn=k + 1, session_turns=len(script.users))
        if m.outcome != OK:
            return
        answer = script.answers[k] if sessions.replay else keeper.text
        history += [{"role": "user", "content": script.users[k]}, {"role": "assistant", "content": answer or ""}]
