"""The tests' real PostgreSQL (``bench.postgres``): one server per test module, a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.postgres import PostgresServer, free_port, fresh_database, postgres_server

__all__ = ["PostgresServer", "free_port", "fresh_database", "postgres"]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """One server per test module; each test takes a fresh database from ``fresh_database``."""
    with postgres_server() as server:
        yield server
