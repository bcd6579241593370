"""A toy wire protocol, added from outside the package as any provider would be: one module (this one)
plus its data, then ``registry.register``.

Request: ``POST /toy/{model}/ask?token=KEY``, body ``{"ask": ..., "model": ..., "limit": ...}``.
Streamed answer: one line per event, ``T <text>`` (a piece of the answer), ``R <text>`` (thinking),
``U <prompt> <completion>`` (usage), ``X <message>`` (an error), and ``E`` at the end; a line may be split
anywhere between reads. Whole answer: ``{"say": ..., "used": [prompt, completion]}``. Error answer:
``{"trouble": ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from loadbench.protocol.dialect import (
    INVALID,
    NOTHING,
    Answer,
    Auth,
    Content,
    Decoded,
    Dialect,
    LLMRequest,
    StreamDecoder,
    WireData,
    WireError,
)
from loadbench.protocol.registry import register
from loadbench.protocol.usage import Usage

TOY_DATA = WireData(paths={"chat": "/toy/{model}/ask", "completions": "/toy/{model}/ask"},
                    auth=Auth("query", "token", ""), headers={"Toy-Version": "1"})


class ToyDecoder(StreamDecoder):
    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes, end_of_stream: bool = False) -> Decoded:
        *lines, self._buf = (self._buf + chunk).split(b"\n")
        if not lines:
            return NOTHING
        content: list[Content] = []
        usage: Usage | None = None
        error: WireError | None = None
        done = False
        for line in lines:
            tag, _, rest = line.decode().partition(" ")
            if tag == "T":
                content.append(Content(rest))
            elif tag == "R":
                content.append(Content(rest, "reasoning"))
            elif tag == "U":
                prompt, completion = rest.split()
                usage = Usage(prompt_tokens=int(prompt), completion_tokens=int(completion))
            elif tag == "X":
                error = error or WireError(rest, "toy_error")
            elif tag == "E":
                done = True
            else:
                error = error or WireError(f"not a toy line: {line[:40]!r}", INVALID)
        return Decoded(tuple(content), usage, None, "stop" if done else None, error, False, done)


class ToyDialect(Dialect):
    name = "toy"
    content_type = "application/x-toy+json"
    stream_accept = "text/x-toy-lines"
    end_marker = "its E line"

    def __init__(self, data: WireData = TOY_DATA) -> None:
        self.data = data

    def body(self, req: LLMRequest) -> bytes:
        ask = req.prompt if req.prompt is not None else req.messages[-1].content
        return orjson.dumps({"ask": ask, "model": req.model, "limit": req.max_tokens, "stream": req.stream})

    def decoder(self) -> StreamDecoder:
        return ToyDecoder()

    def decode(self, body: bytes) -> Answer:
        try:
            obj = orjson.loads(body)
            prompt, completion = obj["used"]
            return Answer(text=obj["say"], finish_reason="stop", usage=Usage(prompt, completion), choices=1)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return Answer(error=WireError(f"not a toy answer: {body[:40]!r}", INVALID))

    def error(self, status: int, body: bytes) -> WireError:
        try:
            return WireError(str(orjson.loads(body)["trouble"]), "toy_error", status)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return WireError(body[:200].decode("utf-8", "replace"), "toy_error", status)

    def error_body(self, message: str, status: int, kind: str | None = None) -> bytes:
        return orjson.dumps({"trouble": message})

    def usage_in(self, tail: bytes) -> Usage | None:
        at = tail.rfind(b"\nU ")
        if at < 0:
            return None
        prompt, completion = tail[at + 3:tail.index(b"\n", at + 1)].split()
        return Usage(prompt_tokens=int(prompt), completion_tokens=int(completion))

    def question(self, body: Mapping[str, Any]) -> str:
        ask = body.get("ask")
        return ask if isinstance(ask, str) else ""


TOY = register(ToyDialect(), replace=True)
