"""One exception tree and one exit-code table for all of loadbench.

    LoadbenchError                  base; carries the exit code the CLI returns
    ├── InputError                  bad profile / scenario / config / CLI usage  -> 2
    │   └── ConfigError             a validated file is wrong (names file, field, fix)
    ├── TargetError                 the endpoint cannot be reached or answers nonsense -> 4
    └── Interrupted                 Ctrl-C / SIGTERM -> 130

The CLI maps every LoadbenchError to its ``exit_code``; anything else is a bug (exit 70). A run's
own outcome (gates, validity, workers) is not an exception: ``loadbench.run.verdict`` maps it to
an ExitCode.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The only exit-code table. The README reproduces it."""

    OK = 0
    GATE_FAILED = 1  # threshold or regression failed
    BAD_INPUT = 2  # bad usage or input; nothing was sent
    INVALID_RUN = 3  # the run is not valid to judge
    TARGET_FAILED = 4  # the target could not be reached / every request failed
    WORKERS_MISSING = 5  # fewer workers than expected connected to the master; nothing was measured
    INTERNAL = 70  # a bug in loadbench (EX_SOFTWARE)
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


class LoadbenchError(Exception):
    exit_code: ExitCode = ExitCode.INTERNAL


class InputError(LoadbenchError):
    exit_code = ExitCode.BAD_INPUT


class ConfigError(InputError):
    """A file failed validation. The message names the file, the field and the fix."""

    def __init__(self, path: str, field: str, problem: str, fix: str = "") -> None:
        self.path = path
        self.field = field
        self.problem = problem
        self.fix = fix
        msg = f"{path}: {field}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class TargetError(LoadbenchError):
    exit_code = ExitCode.TARGET_FAILED


class Interrupted(LoadbenchError):
    exit_code = ExitCode.INTERRUPTED
