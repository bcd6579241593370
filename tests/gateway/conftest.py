"""Fixtures of the gateway tests (helpers that are not fixtures live in harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadbench.procs import ServerProcess


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in reversed(started):
        server.stop()
