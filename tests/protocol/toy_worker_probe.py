"""Run in a process of its own (importing Locust patches it with gevent): the worker's real ``measure``,
with Locust's FastHttpSession, sends toy requests to the toy server at ``argv[1]`` and prints what it
measured as JSON, one object per request."""

from __future__ import annotations

import json
import sys

from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from loadbench.protocol.dialect import LLMRequest, Message
from loadbench.workers.stream import measure
from tests.protocol.toy_dialect import TOY
from tests.protocol.toy_server import SECRET

CALLS = (("toy-model", SECRET, True), ("toy-model", SECRET, False), ("cut-model", SECRET, True),
         ("toy-model", "wrong", True))


def main(base_url: str) -> None:
    session = FastHttpSession(base_url, request_event=Environment().events.request, user=None)
    out = []
    for model, key, stream in CALLS:
        wire = TOY.request(LLMRequest(model, (Message("user", "what?"),), max_tokens=5, stream=stream), key)
        m = measure(session, "/v9" + wire.path, wire.body, wire.headers, stream=stream, timeout_s=10.0, dialect=TOY)
        times = m.token_times_ns
        out.append({"outcome": m.outcome, "status": m.status, "tokens": len(times), "prompt": m.prompt_tokens,
                    "completion": m.completion_tokens, "error": m.error,
                    "timed_in_order": bool(times) and m.sent_ns <= (m.first_byte_ns or 0) <= times[0]
                    and times == sorted(times) and times[-1] <= m.end_ns})
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
