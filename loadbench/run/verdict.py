"""The exit code of one run as one pure function of what it produced.

Order of precedence (the first that applies):
    interrupted (Ctrl-C, SIGTERM)                      -> INTERRUPTED (130)
    the master failed: workers missing                 -> WORKERS_MISSING (5)
    the master failed: the target could not be reached -> TARGET_FAILED (4)
    the master failed otherwise                        -> INTERNAL (70)
    requests were sent and none succeeded              -> TARGET_FAILED (4)
    no request was sent: the run measured nothing      -> INVALID_RUN (3), with or without --strict
    --strict and the validity check found reasons      -> INVALID_RUN (3)
    a threshold failed                                 -> GATE_FAILED (1)
    otherwise                                          -> OK (0)
"""

from __future__ import annotations

from dataclasses import dataclass

from loadbench.errors import ExitCode

_MASTER_FAILURES = {ExitCode.WORKERS_MISSING, ExitCode.TARGET_FAILED, ExitCode.INTERRUPTED}


@dataclass(frozen=True, slots=True)
class RunOutcome:
    launch_code: int  # the master's exit code (an ExitCode value)
    interrupted: bool  # the launcher saw a signal or the master was interrupted
    requests_total: int
    requests_ok: int
    gates_failed: bool
    invalid: bool  # the validity check found reasons
    strict: bool


def exit_code(o: RunOutcome) -> ExitCode:
    if o.interrupted or o.launch_code == ExitCode.INTERRUPTED:
        return ExitCode.INTERRUPTED
    if o.launch_code != ExitCode.OK:
        return ExitCode(o.launch_code) if o.launch_code in _MASTER_FAILURES else ExitCode.INTERNAL
    if o.requests_total and o.requests_ok == 0:
        return ExitCode.TARGET_FAILED
    if o.requests_total == 0:
        return ExitCode.INVALID_RUN  # no figure of it can be defended, so it never passes a gate
    if o.strict and o.invalid:
        return ExitCode.INVALID_RUN
    if o.gates_failed:
        return ExitCode.GATE_FAILED
    return ExitCode.OK
