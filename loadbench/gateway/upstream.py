"""One explicitly sized aiohttp connection pool per target (aiohttp's default of 100 is a trap).

Streams: the read timeout is ``first_token_s`` from the request until the first content chunk
(a role-only first chunk does not end it), then the relay switches it to ``idle_s`` for every gap
between reads (``use_idle_timeout``). Non-streamed answers arrive whole at the end of generation,
so only ``total_s`` bounds them. ``connect_s`` and ``total_s`` apply to both.
"""

from __future__ import annotations

import aiohttp

from loadbench.gateway.config import TargetSpec


class Upstream:
    __slots__ = ("chat_url", "completions_url", "headers", "in_flight", "session", "spec", "stream_timeout",
                 "whole_timeout")

    def __init__(self, spec: TargetSpec) -> None:
        self.spec = spec
        t = spec.timeouts
        connector = aiohttp.TCPConnector(limit=spec.max_connections, limit_per_host=spec.max_connections,
                                         keepalive_timeout=60, ttl_dns_cache=300)
        self.stream_timeout = aiohttp.ClientTimeout(total=t.total_s, sock_connect=t.connect_s,
                                                    sock_read=t.first_token_s)
        self.whole_timeout = aiohttp.ClientTimeout(total=t.total_s, sock_connect=t.connect_s)
        self.session = aiohttp.ClientSession(connector=connector, timeout=self.stream_timeout,
                                             auto_decompress=False, skip_auto_headers=("User-Agent",))
        self.chat_url = spec.url + "/chat/completions"
        self.completions_url = spec.url + "/completions"
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        if spec.api_key:
            headers["Authorization"] = "Bearer " + spec.api_key
        self.headers = headers
        self.in_flight = 0

    def use_idle_timeout(self, resp: aiohttp.ClientResponse) -> None:
        t = self.spec.timeouts
        conn = resp.connection
        if conn is not None and conn.protocol is not None and t.idle_s != t.first_token_s:
            proto = conn.protocol
            proto.read_timeout = t.idle_s
            # restart the pending timer with the new length (aiohttp otherwise applies it only
            # from the next read on); guarded because the method is not public API
            reschedule = getattr(proto, "_reschedule_timeout", None)
            if reschedule is not None:
                reschedule()

    async def close(self) -> None:
        await self.session.close()
