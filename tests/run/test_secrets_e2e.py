"""Credentials in profile headers reach the target and never a file of the run folder."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import only_run, run_loadbench


class RecordingUpstream:
    """A minimal OpenAI chat endpoint (not streamed) that keeps the headers of every request."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _chat(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        await request.read()
        return web.json_response({"id": "x", "object": "chat.completion", "model": "m",
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                               "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> RecordingUpstream:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream().start()
    yield server
    server.stop()


@pytest.mark.slow
def test_header_credentials_are_sent_and_redacted_in_every_file(upstream: RecordingUpstream, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LB_TEST_HEADER_TOKEN", "tok-from-env-42")
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "users: 1\nramp_up_s: 0\nduration_s: 2\nstream: false\ntargets:\n"
        f"  - name: up\n    url: http://127.0.0.1:{upstream.port}/v1\n    model: m\n"
        "    options:\n      headers: {X-Api-Key: sk-literal-secret-9, X-Trace: visible-1, "
        "X-Session-Token: {env: LB_TEST_HEADER_TOKEN}}\n")
    out = tmp_path / "results"
    r = run_loadbench("run", "--profile", str(profile), "--out", str(out), "--no-calibrate", timeout_s=120)
    assert r.returncode in (0, 3), r.stdout + r.stderr  # too few samples for a 2 s run is fine
    seen = upstream.headers
    assert len(seen) >= 2  # the pre-flight request and the load
    assert all(h["X-Api-Key"] == "sk-literal-secret-9" and h["X-Session-Token"] == "tok-from-env-42"
               and h["X-Trace"] == "visible-1" for h in seen)
    folder = only_run(out)
    written = "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())
    assert "sk-literal-secret-9" not in written and "tok-from-env-42" not in written
    assert "visible-1" in written and "LB_TEST_HEADER_TOKEN" in written  # non-secrets and variable names are kept
    assert "sk-literal-secret-9" not in r.stdout + r.stderr


def test_an_unset_header_variable_exits_2(upstream: RecordingUpstream, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LB_TEST_UNSET_HEADER", raising=False)
    profile = tmp_path / "p.yaml"
    profile.write_text(f"targets:\n  - name: up\n    url: http://127.0.0.1:{upstream.port}/v1\n    model: m\n"
                       "    options: {headers: {X-Token: {env: LB_TEST_UNSET_HEADER}}}\n")
    r = run_loadbench("run", "--profile", str(profile), "--out", str(tmp_path / "results"), timeout_s=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "targets[up].options.headers.X-Token: LB_TEST_UNSET_HEADER is not set" in r.stderr
    assert upstream.headers == []
