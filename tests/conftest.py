"""Shared fixtures: real servers as subprocesses on 127.0.0.1, port 0."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadbench.procs import ServerProcess, start_server
from loadbench.protocol.dialect import Decoded

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def mock_factory() -> Iterator:
    started: list[ServerProcess] = []

    def make(*args: str) -> ServerProcess:
        server = start_server(["mock", "--port", "0", *args])
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop()


def run_loadbench(*args: str, timeout_s: float = 180.0, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI as a user would (a fresh interpreter)."""
    return subprocess.run([sys.executable, "-m", "loadbench", *args], capture_output=True, text=True,
                          timeout=timeout_s, cwd=cwd or REPO)


def only_run(out: Path) -> Path:
    """The single run folder a command wrote under ``out``."""
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def read_json(path: Path) -> dict:
    import orjson

    return dict(orjson.loads(path.read_bytes()))


def mock_stats(server: ServerProcess) -> dict:
    """The mock's own counters (``GET /mock/stats``): what the target actually received."""
    import urllib.request

    import orjson

    with urllib.request.urlopen(server.url + "/mock/stats", timeout=10) as resp:
        return dict(orjson.loads(resp.read()))


def event_decoded(payload: bytes) -> Decoded:
    """What the openai dialect's stream decoder (the worker's) reads from one SSE event's ``data`` payload."""
    from loadbench.protocol.openai import OPENAI

    return OPENAI.decoder().feed(b"data: " + payload + b"\n\n")


def wait_for_mock_requests(server: ServerProcess, count: int, timeout_s: float = 60.0) -> None:
    """Until the mock has received ``count`` requests: a run's load is under way, however long its start
    took on a busy machine (a fixed sleep measured the machine's speed, not the run)."""
    import time

    deadline = time.monotonic() + timeout_s
    while mock_stats(server)["requests"] < count:
        assert time.monotonic() < deadline, f"the mock received fewer than {count} requests in {timeout_s:g} s"
        time.sleep(0.1)


def write_profile(tmp_path: Path, text: str, name: str = "profile.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def run_profile(tmp_path: Path, profile: str, *args: str, expect_code: int = 0) -> Path:
    """``loadbench run`` with the given profile text (and extra arguments); the run folder."""
    out = tmp_path / "results"
    r = run_loadbench("run", *args, "--profile", str(write_profile(tmp_path, profile)), "--out", str(out))
    assert r.returncode == expect_code, r.stdout + r.stderr
    return only_run(out)


def samples_of(run: Path) -> list[dict]:
    """A run folder's samples in the order of their intended start."""
    from loadbench.results import run_dir as rd

    return sorted(rd.iter_samples(run), key=lambda s: s["intended_unix_ns"])
