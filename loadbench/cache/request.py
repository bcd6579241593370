"""Turn an OpenAI request body into cache keys, or a reason it must not be cached.

Two digests of the normalised body:
- ``exact``: everything that shapes the answer (model, every message, sampling parameters,
  tools, response format, ...). Equal digests mean the same request.
- ``context``: the same, with the *text of the last user message* blanked. Semantic matching
  only ever compares requests whose context digests are equal, so a similar question never hits
  across a different system prompt, prior turn, temperature or tool list.

Only presentation fields are dropped (``stream``, ``stream_options``): the answer is replayed
in whichever form the new request asks for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from loadbench.cache.config import CacheConfig

RequestKind = Literal["chat", "completions"]

_PRESENTATION_FIELDS = frozenset({"stream", "stream_options"})
# Integer and float spellings of the same value must hash alike (0 and 0.0).
_FLOAT_FIELDS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty",
                           "repetition_penalty", "min_p"})
# OpenAI samples at temperature 1 when a request leaves it out.
_DEFAULT_TEMPERATURE = 1.0
_BLANK = "\x00last-user-message\x00"


@dataclass(slots=True, frozen=True)
class PreparedRequest:
    kind: RequestKind
    exact_digest: bytes
    context_digest: bytes
    semantic_text: str | None  # None: exact matching only (e.g. last message is not user text)


@dataclass(slots=True, frozen=True)
class Bypass:
    reason: str


def prepare(body: dict[str, Any], config: CacheConfig) -> PreparedRequest | Bypass:
    """Keys for ``body``, or why it is not cacheable. Pure; never raises on odd input."""
    if not isinstance(body, dict):
        return Bypass("body is not an object")
    if "messages" in body:
        kind: RequestKind = "chat"
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            return Bypass("messages is not a non-empty list")
        if len(messages) > config.max_messages:
            return Bypass(f"more than max_messages={config.max_messages} messages")
    elif "prompt" in body:
        kind = "completions"
    else:
        return Bypass("neither messages nor prompt")
    n = body.get("n", 1)
    if n != 1:
        # A cached answer holds one choice; replaying it for n > 1 would be a different shape.
        return Bypass("n != 1")
    if body.get("logprobs") or body.get("top_logprobs"):
        return Bypass("logprobs are not stored")
    if not config.cache_nondeterministic:
        temperature = body.get("temperature", _DEFAULT_TEMPERATURE)
        if not isinstance(temperature, int | float) or temperature > 0:
            return Bypass("non-deterministic (temperature > 0 or unset); see cache_nondeterministic")

    normal: dict[str, Any] = {}
    for key, value in body.items():
        if key in _PRESENTATION_FIELDS:
            continue
        if key in _FLOAT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        normal[key] = value

    semantic_text: str | None = None
    if kind == "chat":
        normal["messages"] = [_normal_message(m) for m in body["messages"]]
        last = normal["messages"][-1]
        if isinstance(last, dict) and last.get("role") == "user" and isinstance(last.get("content"), str):
            semantic_text = last["content"]
            context = dict(normal)
            context["messages"] = [*normal["messages"][:-1], {**last, "content": _BLANK}]
        else:
            context = normal
    else:
        prompt = body["prompt"]
        if isinstance(prompt, str):
            semantic_text = prompt
            context = {**normal, "prompt": _BLANK}
        else:
            context = normal
    try:
        exact = _digest(kind, normal)
        ctx = _digest(kind, context)
    except TypeError:
        return Bypass("body is not JSON-serialisable")
    if semantic_text is not None and not semantic_text.strip():
        semantic_text = None
    return PreparedRequest(kind=kind, exact_digest=exact, context_digest=ctx, semantic_text=semantic_text)


def _normal_message(message: Any) -> Any:
    """``content: [{type: text, text: a}, {type: text, text: b}]`` and ``content: "ab"`` are the
    same message to the model, so they share a key; any non-text part keeps the list form."""
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, list) and content and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) and len(p) == 2
        for p in content
    ):
        return {**message, "content": "".join(p["text"] for p in content)}
    return message


def _digest(kind: str, obj: dict[str, Any]) -> bytes:
    raw = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    h = hashlib.blake2b(kind.encode(), digest_size=16)
    h.update(b"\x00")
    h.update(raw)
    return h.digest()
