"""Fixtures of the gateway tests (helpers that are not fixtures live in harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadbench.procs import ServerProcess
from tests.redis_server import durable_redis_server, redis_server  # noqa: F401  (fixtures of the Redis tests)


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in reversed(started):
        server.stop()
