"""Response bytes: SSE chunk templates, non-streamed bodies, embeddings and error bodies.

A stream's content chunks are all the same JSON but for the text, so each stream builds one
template (prefix, suffix) once and every chunk is ``prefix + text + suffix``: no JSON encoding
per chunk. The template is cut from ``orjson.dumps`` of the real chunk object, so it is exactly
the JSON a full encode would give. Output token text (" tok12") never needs JSON escaping.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from dataclasses import dataclass
from typing import Any

import orjson

from loadbench.protocol import openai

_SPLICE = "@@loadbench-splice@@"
DONE = openai.DONE_EVENT


def sse(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None) -> dict[str, Any]:
    """OpenAI's usage object; ``cached_tokens`` (the server model's prefix-cache hits) when given."""
    out: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                           "total_tokens": prompt_tokens + completion_tokens}
    if cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return out


@dataclass(slots=True)
class StreamTemplate:
    """Everything one stream writes, built once per request."""

    first: bytes  # role-only delta (chat) or empty text (completions): not a token
    prefix: bytes
    suffix: bytes
    tail: bytes  # finish chunk, optional usage chunk, [DONE]

    def chunk(self, text: str) -> bytes:
        return self.prefix + text.encode() + self.suffix

    @property
    def unfinished_tail(self) -> bytes:
        """The tail without ``[DONE]``: a stream that ends without its end marker."""
        return self.tail.removesuffix(DONE)


def _header(response_id: str, obj: str, created: int, model: str) -> dict[str, Any]:
    return {"id": response_id, "object": obj, "created": created, "model": model}


def content_chunk_object(*, chat: bool, response_id: str, created: int, model: str,
                         text: str) -> dict[str, Any]:
    """One content chunk as a JSON object (what the template must reproduce)."""
    if chat:
        choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "finish_reason": None}
        return {**_header(response_id, "chat.completion.chunk", created, model), "choices": [choice]}
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": None}
    return {**_header(response_id, "text_completion", created, model), "choices": [choice]}


def stream_template(*, chat: bool, response_id: str, created: int, model: str,
                    prompt_tokens: int, completion_tokens: int, include_usage: bool,
                    cached_tokens: int | None = None) -> StreamTemplate:
    obj = "chat.completion.chunk" if chat else "text_completion"
    head = _header(response_id, obj, created, model)
    encoded = sse(content_chunk_object(chat=chat, response_id=response_id, created=created,
                                       model=model, text=_SPLICE))
    prefix, suffix = encoded.split(_SPLICE.encode())
    if chat:
        first_choice: dict[str, Any] = {"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}
        last_choice: dict[str, Any] = {"index": 0, "delta": {}, "finish_reason": "length"}
    else:
        first_choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": None}
        last_choice = {"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}
    tail = sse({**head, "choices": [last_choice]})
    if include_usage:
        tail += sse({**head, "choices": [], "usage": usage(prompt_tokens, completion_tokens, cached_tokens)})
    return StreamTemplate(first=sse({**head, "choices": [first_choice]}), prefix=prefix,
                          suffix=suffix, tail=tail + DONE)


def completion_body(*, chat: bool, response_id: str, created: int, model: str, text: str,
                    prompt_tokens: int, completion_tokens: int, with_usage: bool,
                    cached_tokens: int | None = None) -> bytes:
    if chat:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": "length"}
        body = {**_header(response_id, "chat.completion", created, model), "choices": [choice]}
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        body = {**_header(response_id, "text_completion", created, model), "choices": [choice]}
    if with_usage:
        body["usage"] = usage(prompt_tokens, completion_tokens, cached_tokens)
    return orjson.dumps(body)


def embedding(text: str, dim: int) -> list[float]:
    """A unit vector that depends only on the text and ``dim`` (seeded by a hash of the text)."""
    seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=16).digest(), "big")
    rng = random.Random(seed)
    vec = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def embeddings_body(texts: list[str], *, dim: int, model: str, prompt_tokens: int,
                    encoding_format: str | None) -> bytes:
    data: list[dict[str, Any]] = []
    for i, text in enumerate(texts):
        vec = embedding(text, dim)
        value: list[float] | str = vec
        if encoding_format == "base64":  # what the openai client asks for by default
            value = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return orjson.dumps({"object": "list", "data": data, "model": model,
                         "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})


def error_body(status: int, message: str) -> bytes:
    return openai.OPENAI.error_body(message, status)


def models_body(model: str, created: int) -> bytes:
    return orjson.dumps({"object": "list", "data": [
        {"id": model, "object": "model", "created": created, "owned_by": "loadbench"}]})
