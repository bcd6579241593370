"""What one exchange knows about its request, and the hook a response cache plugs into.

The steps (``exchange.Exchange``): auth -> body and model -> [cache lookup] -> route selection ->
upstream call with retry/fallback -> relay -> [cache store]. A cache implements ``CacheHook`` and is
given to ``create_app``; it sees the ``RequestContext``, never the exchange.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from loadbench.gateway.config import Route
from loadbench.protocol.dialect import Dialect, LLMRequest
from loadbench.protocol.openai import OPENAI
from loadbench.protocol.usage import Usage

_ids = itertools.count(1)
_prefix = [f"lb-{os.getpid():x}-"]


def _after_fork() -> None:  # forked workers must not reuse the parent's ids
    _prefix[0] = f"lb-{os.getpid():x}-"


os.register_at_fork(after_in_child=_after_fork)


def next_request_id() -> str:
    return f"{_prefix[0]}{next(_ids):x}"


@dataclass(slots=True)
class RequestContext:
    request_id: str
    arrival_ns: int
    kind: str  # "chat" | "completions"
    headers: Mapping[str, str] = field(default_factory=dict)  # the client's request headers
    body: dict[str, Any] = field(default_factory=dict)  # the parsed client body
    stream: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    client_key_digest: bytes | None = None  # caller identity for cache scoping (never the key)
    route: Route | None = None
    attempts: int = 0
    target: str = ""  # the target that served
    failed_ns: int = 0  # time spent in failed attempts and retry delays
    capture: bool = False  # set by a cache hook to receive the response bytes in ``store``
    captured: list[bytes] = field(default_factory=list)
    extra_headers: dict[str, str] = field(default_factory=dict)  # added to the routed response
    cache_state: Any = None  # whatever the cache hook keeps between lookup and store
    # what the request log and experiments read once the exchange is over (loadbench.gateway.requestlog)
    first_ns: int = 0  # first content delta (a whole answer: its arrival)
    last_ns: int = 0
    tokens: int = 0  # output tokens counted or reported
    usage_tail: bytes = b""  # the bytes that carry the upstream's usage (parsed off the event loop)
    outcome: str = ""  # "" or why a 200 went wrong (outcomes.STREAM_CUT)
    experiment: str = ""
    arm: str = ""  # "incumbent" | "candidate"
    keep_answer: bool = False  # the request log wants the answer's bytes in ``captured``
    log_body: bool = False  # ... and writes the bodies (log_bodies)
    pair_id: str = ""  # a shadowed request and its shadows share it (the primary's request id)
    role: str = "primary"  # primary | shadow (never sent to the client) | escalated (an answer that failed its check)
    ingress: Dialect = OPENAI  # the protocol the client speaks (its answer and errors are written in it)
    request: LLMRequest | None = None  # the client's request as its dialect read it (not OpenAI clients)
    usage: Usage | None = None  # the target's usage, decoded (else read from ``usage_tail`` by the log)


class CacheHook(Protocol):
    async def lookup(self, ctx: RequestContext) -> web.StreamResponse | None:
        """Return a response to serve from cache, or None to go upstream.

        May set ``ctx.capture`` so the relay keeps the response bytes for ``store``."""

    async def store(self, ctx: RequestContext, status: int, body: bytes) -> None:
        """Called after a complete successful response (streams only after ``[DONE]``)."""
