"""One explicitly sized aiohttp connection pool per target (aiohttp's default of 100 is a trap).

Timeouts: ``connect_s`` and ``total_s`` through aiohttp for every request. For streams the handler
bounds the wait from the send to the first content chunk by ``first_token_s`` (a role-only first
chunk does not end it) and each later gap between reads by ``idle_s``, with one asyncio timeout
for the headers and the ``watchdog`` after them. Non-streamed answers arrive whole at the end of
generation, so only ``total_s`` bounds them. No ``sock_read``: it re-arms a timer on every chunk.

A target speaks its ``protocol:`` (``dialect``). An OpenAI target is sent the client's body as it came
(``chat_url``, ``headers``); any other is sent the request its dialect builds (``wire``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from loadbench.gateway.config import UpstreamSpec
from loadbench.protocol.aws import sign
from loadbench.protocol.dialect import LLMRequest, WireRequest
from loadbench.protocol.openai import OPENAI
from loadbench.protocol.registry import dialect

# bytes are relayed as sent: a compressed stream would arrive whole at its end (Bedrock's gzip trap)
IDENTITY = {"Accept-Encoding": "identity"}


class _Request(aiohttp.ClientRequest):
    """aiohttp's request without the User-Agent it adds (the gateway does not announce aiohttp to a
    target). Saying so per session (``skip_auto_headers``) makes aiohttp copy every request's headers
    to apply the list: 2.6 us a request."""

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        headers = self.headers
        for name, value in self.DEFAULT_HEADERS.items():
            if name not in headers:
                headers[name] = value


class Upstream:
    __slots__ = ("chat_url", "completions_url", "dialect", "first_token_ns", "headers", "idle_ns", "in_flight",
                 "native", "session", "spec")

    def __init__(self, spec: UpstreamSpec) -> None:
        self.spec = spec
        t = spec.timeouts
        connector = aiohttp.TCPConnector(limit=spec.max_connections, limit_per_host=spec.max_connections,
                                         keepalive_timeout=60, ttl_dns_cache=300)
        self.session = aiohttp.ClientSession(connector=connector,
                                             timeout=aiohttp.ClientTimeout(total=t.total_s, sock_connect=t.connect_s),
                                             auto_decompress=False, request_class=_Request)
        self.dialect = dialect(spec.protocol)
        self.native = self.dialect is OPENAI  # speaks the body the gateway's OpenAI clients send
        self.chat_url = OPENAI.url(spec.url, "chat")
        self.completions_url = OPENAI.url(spec.url, "completions")
        # one header set for streamed and whole requests alike: no Accept, and bytes relayed as sent;
        # a multidict, which aiohttp takes as it is (a dict it converts on every request: 1.7 us)
        self.headers: Mapping[str, str] = CIMultiDictProxy(CIMultiDict(
            {**OPENAI.headers(spec.api_key, stream=False), **IDENTITY}))
        self.in_flight = 0
        self.first_token_ns = round(t.first_token_s * 1e9)
        self.idle_ns = round(t.idle_s * 1e9)

    def wire(self, req: LLMRequest) -> tuple[str, dict[str, str], bytes]:
        """(url, headers, body) of ``req`` in the target's protocol, with its key, or signed (SigV4)
        at this moment for a Bedrock target."""
        wire = self.dialect.request(req, self.spec.api_key)
        url = self.spec.url + wire.path
        aws = self.spec.aws
        if aws is None:
            return url, {**wire.headers, **IDENTITY}, wire.body
        wire = WireRequest(wire.path, {**wire.headers, **IDENTITY}, wire.body)  # signed as sent
        return url, sign(wire, url, aws.credentials, aws.region, datetime.now(UTC)), wire.body

    async def close(self) -> None:
        await self.session.close()
