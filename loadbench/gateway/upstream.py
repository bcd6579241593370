"""One explicitly sized aiohttp connection pool per target (aiohttp's default of 100 is a trap).

The session's read timeout starts at ``first_token_s`` (request sent -> first body byte) and the
relay switches it to ``idle_s`` once the first byte is in (``use_idle_timeout``).
"""

from __future__ import annotations

import aiohttp

from loadbench.gateway.config import TargetSpec


class Upstream:
    __slots__ = ("chat_url", "completions_url", "headers", "in_flight", "session", "spec")

    def __init__(self, spec: TargetSpec) -> None:
        self.spec = spec
        t = spec.timeouts
        connector = aiohttp.TCPConnector(limit=spec.max_connections, limit_per_host=spec.max_connections,
                                         keepalive_timeout=60, ttl_dns_cache=300)
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=t.total_s, sock_connect=t.connect_s,
                                          sock_read=t.first_token_s),
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
            conn.protocol.read_timeout = t.idle_s

    async def close(self) -> None:
        await self.session.close()
