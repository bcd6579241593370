"""``keepalive.post`` against a real server that closes a kept-alive connection when the next request
arrives on it, before answering (the request never reached its handler), as llama.cpp's server does."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from loadbench.protocol.keepalive import post

ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
          b"Connection: keep-alive\r\n\r\n{}")


class OneAnswerPerConnection(asyncio.Protocol):
    """Answers the first request of a connection (claiming keep-alive), closes it at the next one."""

    served: list[int]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.requests = 0

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" not in data:
            return
        self.requests += 1
        if self.requests == 1:
            self.served.append(1)
            self.transport.write(ANSWER)
        else:
            self.transport.close()  # the kept-alive connection, closed under the next request


async def _two_requests(use_post: bool) -> tuple[list[int], list[int]]:
    served: list[int] = []

    def factory() -> OneAnswerPerConnection:
        proto = OneAnswerPerConnection()
        proto.served = served
        return proto

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    statuses: list[int] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            for _ in range(2):
                if use_post:
                    async with await post(session, url, b"{}", {"Content-Type": "application/json"}) as resp:
                        await resp.read()
                else:
                    async with session.post(url, data=b"{}", headers={"Content-Type": "application/json"}) as resp:
                        await resp.read()
                statuses.append(resp.status)
    finally:
        server.close()
        await server.wait_closed()
    return statuses, served


def test_a_request_on_a_connection_the_server_closed_is_sent_once_more() -> None:
    statuses, served = asyncio.run(_two_requests(use_post=True))
    assert statuses == [200, 200] and served == [1, 1]  # the second answered on a second connection


def test_without_it_the_same_request_fails() -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        asyncio.run(_two_requests(use_post=False))
