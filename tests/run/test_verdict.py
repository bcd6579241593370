"""The exit code of a run as one pure function, checked as a table."""

from __future__ import annotations

import pytest

from loadbench.errors import ExitCode
from loadbench.run.verdict import RunOutcome, exit_code

OK_RUN = {"launch_code": 0, "interrupted": False, "requests_total": 100, "requests_ok": 100,
          "gates_failed": False, "invalid": False, "strict": False}

TABLE = [
    ({}, ExitCode.OK),
    ({"gates_failed": True}, ExitCode.GATE_FAILED),
    ({"invalid": True}, ExitCode.OK),  # not strict: a note, not a failure
    ({"invalid": True, "strict": True}, ExitCode.INVALID_RUN),
    ({"invalid": True, "strict": True, "gates_failed": True}, ExitCode.INVALID_RUN),
    ({"requests_ok": 0}, ExitCode.TARGET_FAILED),
    ({"requests_ok": 0, "requests_total": 0}, ExitCode.INVALID_RUN),  # measured nothing: never a pass
    ({"requests_ok": 0, "requests_total": 0, "gates_failed": True}, ExitCode.INVALID_RUN),
    ({"requests_ok": 0, "gates_failed": True, "invalid": True, "strict": True}, ExitCode.TARGET_FAILED),
    ({"launch_code": ExitCode.WORKERS_MISSING, "requests_total": 0, "requests_ok": 0}, ExitCode.WORKERS_MISSING),
    ({"launch_code": ExitCode.TARGET_FAILED}, ExitCode.TARGET_FAILED),
    ({"launch_code": 1}, ExitCode.INTERNAL),  # a master that crashed
    ({"launch_code": -9}, ExitCode.INTERNAL),  # a master killed by a signal
    ({"launch_code": ExitCode.INTERRUPTED}, ExitCode.INTERRUPTED),
    ({"interrupted": True, "gates_failed": True}, ExitCode.INTERRUPTED),
    ({"interrupted": True, "launch_code": ExitCode.WORKERS_MISSING}, ExitCode.INTERRUPTED),
]


@pytest.mark.parametrize(("changes", "expected"), TABLE)
def test_exit_code_table(changes: dict[str, object], expected: ExitCode) -> None:
    assert exit_code(RunOutcome(**{**OK_RUN, **changes})) == expected  # type: ignore[arg-type]


def test_every_exit_code_is_distinct() -> None:
    values = [c.value for c in ExitCode]
    assert len(values) == len(set(values))
    assert ExitCode.WORKERS_MISSING not in (ExitCode.TARGET_FAILED, ExitCode.INVALID_RUN)
