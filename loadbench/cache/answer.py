"""Cached answers: what is stored, how it is captured from an upstream response, how it is replayed.

Only complete, successful text answers are stored: a stream is complete only after a chunk with
``finish_reason`` in {stop, length} AND the ``[DONE]`` sentinel (or a non-stream 200 body);
errors, cut streams, tool calls and content-filter stops are refused (``is_cacheable``).

Replay produces a well-formed OpenAI stream in the format the *new* request asks for:
chat: role delta, content chunks, finish chunk, usage chunk (if ``include_usage``), ``[DONE]``;
completions: text chunks, finish chunk, usage chunk, ``[DONE]``; or a non-stream JSON body.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from loadbench.protocol.openai import DONE, DONE_EVENT, choice_text, has_tool_call

CACHEABLE_FINISH_REASONS = frozenset({"stop", "length"})
Format = Literal["chat", "completions"]


@dataclass(slots=True)
class CachedAnswer:
    text: str
    finish_reason: str
    usage: dict[str, int] = field(default_factory=dict)  # prompt/completion/total_tokens
    model: str = ""  # the model name the upstream reported
    complete: bool = True  # False for anything that did not end cleanly

    @property
    def tokens(self) -> int:
        """Model tokens one hit saves (total, else prompt + completion)."""
        total = self.usage.get("total_tokens")
        if isinstance(total, int):
            return total
        return int(self.usage.get("prompt_tokens", 0)) + int(self.usage.get("completion_tokens", 0))


def is_cacheable(answer: CachedAnswer) -> bool:
    return answer.complete and answer.finish_reason in CACHEABLE_FINISH_REASONS and bool(answer.text)


def answer_from_json(body: dict[str, Any]) -> CachedAnswer | None:
    """A non-stream 200 body (chat.completion or text_completion) -> answer, or None."""
    try:
        choices = body["choices"]
        if len(choices) != 1:
            return None
        choice = choices[0]
        if has_tool_call(choice):
            return None
        text, _ = choice_text(choice)
        answer = CachedAnswer(text=text, finish_reason=str(choice.get("finish_reason")),
                              usage=_usage(body.get("usage")), model=str(body.get("model", "")))
    except (KeyError, TypeError, AttributeError):
        return None
    return answer if is_cacheable(answer) else None


class StreamCapture:
    """Feed it the upstream SSE bytes as they are relayed; ``result()`` is the answer only if the
    stream finished cleanly. Any error event, second choice, tool call or malformed JSON poisons
    it for good. Cheap: it only splits lines and parses ``data:`` payloads."""

    __slots__ = ("_buf", "_done", "_finish", "_model", "_parts", "_poisoned", "_usage")

    def __init__(self) -> None:
        self._buf = b""
        self._parts: list[str] = []
        self._finish: str | None = None
        self._usage: dict[str, int] = {}
        self._model = ""
        self._done = False
        self._poisoned = False

    def feed(self, chunk: bytes) -> None:
        if self._poisoned:
            return
        *lines, self._buf = (self._buf + chunk).split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                self.feed_data(line[5:].strip())

    def feed_data(self, data: bytes | str) -> None:
        """One ``data:`` payload (for callers that already decode SSE)."""
        if self._poisoned:
            return
        raw = data.encode() if isinstance(data, str) else data
        if raw == DONE:
            self._done = True
            return
        if self._done:
            self._poisoned = True  # data after [DONE]
            return
        try:
            event = orjson.loads(raw)
            if "error" in event:
                self._poisoned = True
                return
            if event.get("model"):
                self._model = str(event["model"])
            if event.get("usage"):
                self._usage = _usage(event["usage"])
            for choice in event.get("choices") or ():
                if choice.get("index", 0) != 0 or has_tool_call(choice):
                    self._poisoned = True
                    return
                text, _ = choice_text(choice)  # the answer; reasoning is not replayed
                if text:
                    self._parts.append(text)
                if choice.get("finish_reason"):
                    self._finish = str(choice["finish_reason"])
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            self._poisoned = True

    def fail(self) -> None:
        """The relay broke (upstream error, client gone, timeout): never cache this stream."""
        self._poisoned = True

    def result(self) -> CachedAnswer | None:
        answer = CachedAnswer(text="".join(self._parts), finish_reason=self._finish or "",
                              usage=dict(self._usage), model=self._model,
                              complete=self._done and not self._poisoned and self._finish is not None)
        return answer if is_cacheable(answer) else None


def replay_sse(answer: CachedAnswer, *, fmt: Format, model: str, response_id: str, created_s: int,
               include_usage: bool = False, chunk_chars: int = 16) -> Iterator[bytes]:
    """A cached answer as SSE events (each ``data: ...\\n\\n``), ending with ``data: [DONE]``."""
    obj = "chat.completion.chunk" if fmt == "chat" else "text_completion"
    head = {"id": response_id, "object": obj, "created": created_s, "model": model}

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + orjson.dumps({**head, "choices": choices, **extra}) + b"\n\n"

    def choice(text: str | None, finish: str | None, *, role: bool = False) -> dict[str, Any]:
        if fmt == "chat":
            delta: dict[str, Any] = {}
            if role:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}

    if fmt == "chat":
        yield event([choice("", None, role=True)])
    for piece in _pieces(answer.text, chunk_chars):
        yield event([choice(piece, None)])
    yield event([choice(None, answer.finish_reason)])
    if include_usage:
        yield event([], usage=_full_usage(answer.usage))
    yield DONE_EVENT


def replay_json(answer: CachedAnswer, *, fmt: Format, model: str, response_id: str,
                created_s: int) -> dict[str, Any]:
    """A cached answer as a non-stream response body."""
    if fmt == "chat":
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": answer.text},
                                  "logprobs": None, "finish_reason": answer.finish_reason}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": answer.text, "logprobs": None, "finish_reason": answer.finish_reason}
        obj = "text_completion"
    return {"id": response_id, "object": obj, "created": created_s, "model": model,
            "choices": [choice], "usage": _full_usage(answer.usage)}


def _pieces(text: str, size: int) -> Iterator[str]:
    """Split at word boundaries near ``size`` characters so replayed chunks look like tokens."""
    start = 0
    n = len(text)
    while start < n:
        end = min(n, start + max(1, size))
        if end < n:
            space = text.rfind(" ", start + 1, end + 1)
            if space > start:
                end = space
        yield text[start:end]
        start = end


def _usage(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    return {k: int(v) for k, v in raw.items()
            if k in ("prompt_tokens", "completion_tokens", "total_tokens") and isinstance(v, int)}


def _full_usage(usage: dict[str, int]) -> dict[str, int]:
    prompt = usage.get("prompt_tokens", 0)
    completion = usage.get("completion_tokens", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": usage.get("total_tokens", prompt + completion)}
