"""The exit code of one run as one pure function of what it produced.

Order of precedence (the first that applies):
    interrupted (Ctrl-C, SIGTERM)                      -> INTERRUPTED (130)
    the master failed: workers missing                 -> WORKERS_MISSING (5)
    the master failed: the target could not be reached -> TARGET_FAILED (4)
    the master failed otherwise                        -> INTERNAL (70)
    requests were sent and none succeeded              -> TARGET_FAILED (4)
    no request was sent: the run measured nothing      -> INVALID_RUN (3), with or without --strict
    the target was lost: from some point on no request -> INVALID_RUN (3), with or without --strict
      was answered (refused, reset) to the end of the
      load, for more than the error ceiling of its time
    --strict and the validity check found reasons      -> INVALID_RUN (3)
    a threshold failed                                 -> GATE_FAILED (1)
    otherwise                                          -> OK (0)

Why a lost target fails without --strict while other errors do not: a 429 or a 503 is the target's
answer, a behaviour under load that the run measured (and that the SLO's ``error_rate`` or a threshold
judges). A refused or reset connection is no answer: when the target stopped answering for good (its
process died, its port closed) the figures describe only the part of the run before, and a CI job
that lost its target must not pass. The rule is on time, not on the count of refused requests:
users back off after a refused connection (0.5 s doubling), so a dead target yields few requests, and
a count would let a run pass whose last half measured nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from loadbench.errors import ExitCode
from loadbench.outcomes import CONNECTION_ERROR
from loadbench.report.validity import DEFAULT_ERROR_CEILING

NO_ANSWER = CONNECTION_ERROR  # the outcome of a request the target never answered

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
    lost_share: float  # the share of the load's time after the target was lost (lost_share())
    error_ceiling: float = DEFAULT_ERROR_CEILING


def lost_share(samples: Iterable[tuple[int, str]], load_start_ns: int, load_end_ns: int) -> float:
    """The share of the load's time during which the target was gone: from the first request that
    got no answer after the last successful one (by intended start) to the end of the load. 0 when
    the target answered until the end, or came back."""
    if load_end_ns <= load_start_ns:
        return 0.0
    lost_from: int | None = None
    for intended_ns, outcome in sorted(samples):
        if outcome == "ok":
            lost_from = None
        elif outcome == NO_ANSWER and lost_from is None:
            lost_from = intended_ns
    if lost_from is None:
        return 0.0
    return min(1.0, max(0.0, (load_end_ns - lost_from) / (load_end_ns - load_start_ns)))


def target_lost(o: RunOutcome) -> bool:
    return o.lost_share > o.error_ceiling


def exit_code(o: RunOutcome) -> ExitCode:
    if o.interrupted or o.launch_code == ExitCode.INTERRUPTED:
        return ExitCode.INTERRUPTED
    if o.launch_code != ExitCode.OK:
        return ExitCode(o.launch_code) if o.launch_code in _MASTER_FAILURES else ExitCode.INTERNAL
    if o.requests_total and o.requests_ok == 0:
        return ExitCode.TARGET_FAILED
    if o.requests_total == 0:
        return ExitCode.INVALID_RUN  # no figure of it can be defended, so it never passes a gate
    if target_lost(o):
        return ExitCode.INVALID_RUN
    if o.strict and o.invalid:
        return ExitCode.INVALID_RUN
    if o.gates_failed:
        return ExitCode.GATE_FAILED
    return ExitCode.OK
