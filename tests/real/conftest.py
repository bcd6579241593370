"""The real engine for the ``real`` tests: llama.cpp's server with a random-weight model (bench/engine.py).

The build takes minutes and happens once per machine: when a session has selected a ``real`` test,
it starts in the background at collection (so it overlaps the other tests) and the first test that
needs the engine waits for it, with a timeout that covers the build. A build that cannot happen fails
those tests saying why; it never skips them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.engine import (
    BUILD_TIMEOUT_S,
    EngineConfig,
    EngineUnavailable,
    binary_path,
    ensure_built,
    start_background_build,
    start_engine,
)
from loadbench.procs import ServerProcess

WAIT_FOR_BUILD_S = BUILD_TIMEOUT_S + 300


def pytest_collection_finish(session: pytest.Session) -> None:
    real = [item for item in session.items if item.get_closest_marker("real")]
    if real and not binary_path().exists():
        start_background_build()
        for item in real:  # the first of them may wait for the build: the per-test timeout covers it
            item.add_marker(pytest.mark.timeout(WAIT_FOR_BUILD_S))


@pytest.fixture(scope="session")
def engine_binary() -> Path:
    try:
        return ensure_built()
    except EngineUnavailable as exc:
        pytest.fail(f"the real engine is unavailable: {exc}", pytrace=False)


@pytest.fixture
def engine_factory(engine_binary: Path, tmp_path: Path) -> Iterator:
    """Start engines (``EngineConfig``) for one test; every one is stopped by PID at the end."""
    started: list[ServerProcess] = []

    def make(cfg: EngineConfig | None = None, **kw: object) -> ServerProcess:
        try:
            server = start_engine(cfg or EngineConfig(**kw), tmp_path / "engine-logs")  # type: ignore[arg-type]
        except EngineUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop()
