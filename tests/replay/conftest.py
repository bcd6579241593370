"""The gateway tests' ``servers`` fixture: real mock and gateway processes, stopped after each test."""

from tests.gateway.conftest import servers  # noqa: F401
