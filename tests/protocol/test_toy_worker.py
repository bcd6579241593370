"""The worker's hot path speaks whatever dialect it is given: the real ``measure`` (Locust's
FastHttpSession, in a process of its own) times toy streams from a real toy server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web

from tests.protocol.toy_server import toy_app

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def toy_server(seen: list[dict[str, object]]) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(toy_app(seen))

    async def start() -> int:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return int(runner.addresses[0][1])

    port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.mark.slow
def test_the_worker_measures_a_toy_stream_through_the_toy_dialect() -> None:
    seen: list[dict[str, object]] = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with toy_server(seen) as base:
        proc = subprocess.run([sys.executable, "-m", "tests.protocol.toy_worker_probe", base], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    streamed, whole, cut, refused = json.loads(proc.stdout.strip().splitlines()[-1])

    assert [s["token"] for s in seen] == ["toy-key", "toy-key", "toy-key", "wrong"]  # the key in the query string
    assert seen[0]["accept"] == "text/x-toy-lines" and seen[0]["version"] == "1"
    # thinking and two answer lines are three content events, each timed at the read that completed it
    assert streamed == {"outcome": "ok", "status": 200, "tokens": 3, "prompt": 3, "completion": 2, "error": None,
                        "timed_in_order": True}
    assert whole == {"outcome": "ok", "status": 200, "tokens": 1, "prompt": 3, "completion": 2, "error": None,
                     "timed_in_order": True}
    assert (cut["outcome"], cut["tokens"], cut["error"]) == ("stream_cut", 1, "stream ended without its E line")
    assert (refused["outcome"], refused["status"], refused["error"]) == ("http_error", 401, "HTTP 401: who are you?")
