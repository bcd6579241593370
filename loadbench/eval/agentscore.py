"""An agent trial's outcome score and its trajectory diagnostics. Pure.

Hard checks first, combined multiplicatively (τ-bench's reward): a trial that stopped on a limit
(``max_steps``, the token or the time budget) or on a failed call scores 0 before any check runs;
otherwise

    success = state · facts · forbidden        each 0 or 1
    state     = every predicate holds on the end state, or (no predicates) the end state equals the
                state the gold actions produce (canonical JSON: key order does not matter)
    facts     = every required fact is in the final answer (normalised: case and spacing ignored)
    forbidden = no call the task forbids was made
A rubric judge, where the suite has one, is a further accept criterion: the trial is acceptable
only when this score passes *and* the judge approves, so a judge never rescues a failed check.

Diagnostics (never the verdict): tool-call precision = matched / valid calls made, recall =
matched / gold actions, where matched is the size of the multiset intersection of (tool,
canonical arguments) pairs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from loadbench.eval.criteria import Score
from loadbench.eval.tasks import Action, State, Task, canonical, contains_fact

ANSWERED = "answer"  # the model answered without a tool call: the only stop that is scored


def _key(action: Action) -> tuple[str, bytes]:
    return action.tool, canonical(dict(action.arguments))


def matched_calls(made: Sequence[Action], gold: Sequence[Action]) -> int:
    return sum((Counter(_key(a) for a in made) & Counter(_key(a) for a in gold)).values())


def score_trial(task: Task, stop: str, end_state: State, answer: str, made: Sequence[Action]) -> Score:
    """The trial's success score (parts: each hard check, 1 or 0)."""
    if stop != ANSWERED:
        return Score(0.0, False, f"stopped: {stop}", {"limit": 0.0})
    if task.predicates:
        failed = [p.describe() for p in task.predicates if not p.holds(end_state)]
        state_ok, state_why = not failed, "end state: " + "; ".join(failed)
    else:
        state_ok, state_why = canonical(end_state) == canonical(task.gold_state), "end state differs from gold"
    missing = [f for f in task.facts if not contains_fact(answer, f)]
    used = [f.tool for f in task.forbidden if any(f.matches(a) for a in made)]
    parts = {"state": float(state_ok), "facts": float(not missing), "forbidden": float(not used)}
    why = ([] if state_ok else [state_why]) + ([f"missing facts: {', '.join(missing)}"] if missing else []) \
        + ([f"forbidden call: {', '.join(used)}"] if used else [])
    value = parts["state"] * parts["facts"] * parts["forbidden"]
    return Score(value, value == 1.0, "; ".join(why), parts)
