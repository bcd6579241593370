"""A POST over a kept-alive connection that the server may already have closed.

Servers close idle kept-alive connections on their own schedule, and some close one after every
reply while still answering ``Connection: keep-alive`` (llama.cpp's server does after every streamed
reply). A request written on such a connection meets the close before any byte of an answer:
aiohttp raises ``ServerDisconnectedError``, and the server never started on the request. ``post``
then sends it once more, on a fresh connection (the closed one has left the pool), as HTTP clients
do for a request that never got an answer. It is not a retry of a failure: the caller sees one
attempt, and a target that closes a fresh connection too fails as before (the second error is
raised). The worker does the same for Locust's client (``workers/user.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp


async def post(session: aiohttp.ClientSession, url: str, body: bytes,
               headers: Mapping[str, str]) -> aiohttp.ClientResponse:
    """``session.post(url, data=body, headers=headers)``, sent once more if the connection it went out
    on was closed by the server before any answer. Use as ``async with await post(...) as resp``."""
    try:
        return await session.post(url, data=body, headers=headers)
    except aiohttp.ServerDisconnectedError:
        return await session.post(url, data=body, headers=headers)
