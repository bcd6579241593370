"""An agent suite's figures per target, from its scored trials. Pure.

With n trials of a task and c of them successful (repeats of one task on one target):

    pass@1       mean over tasks of c/n (task weights as for every case)
    pass^k       mean over tasks of C(c, k) / C(n, k): the unbiased estimate of the chance that k
                 independent trials of a task all succeed (Yao et al. 2024, τ-bench), k = the
                 repeats (pass^j for j = 1..k as a curve)
    intervals    95% percentile bootstrap over tasks (a task's repeats are resampled together:
                 they are not independent of each other), ``stats.bootstrap_mean``
    cost per successful task = Σ spend of every trial (failed ones included) / number of successes
    steps, tokens (prompt + completion), wall time: means per trial; TTFT per step: percentiles
    over every step of every trial
    tool precision / recall: Σ matched / Σ valid calls made, Σ matched / Σ gold actions
A trial whose call failed (``ok`` false) counts as a failure everywhere.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from loadbench.eval.dataset import Case
from loadbench.eval.records import CallRecord
from loadbench.eval.scorecard import AgentCard, FailedTrial, Percentiles
from loadbench.eval.stats import bootstrap_mean, pass_hat_k, quantile
from loadbench.eval.suite import AGENT_CRITERION

FAILED_SHOWN = 5  # failed trials whose trace the report shows, per target


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _reason(r: CallRecord) -> str:
    if not r.ok:
        return f"call failed: {r.error}"
    score = r.scores.get(AGENT_CRITERION)
    return (score.detail if score is not None and score.detail else "not accepted (the judge)")


def agent_card(trials: Sequence[tuple[CallRecord, bool]], cases: Mapping[str, Case], k: int,
               seed: int) -> AgentCard:
    """``trials``: every (record, accepted) of one target, in repeat order."""
    by_task: dict[str, list[bool]] = defaultdict(list)
    for r, accepted in trials:
        by_task[r.case_id].append(accepted)
    ids = [cid for cid in cases if cid in by_task]
    weights = [cases[cid].weight for cid in ids]
    k = min([k, *(len(by_task[cid]) for cid in ids)]) if ids else k
    hat = {j: [pass_hat_k(len(by_task[cid]), sum(by_task[cid]), j) for cid in ids] for j in range(1, k + 1)}
    records = [r for r, _ in trials]
    agents = [r.agent for r in records if r.agent is not None]
    successes = sum(1 for _, a in trials if a)
    spend = sum(r.cost for r in records)
    made = sum(a.tool_calls - a.invalid_calls for a in agents)
    matched = sum(a.matched_calls for a in agents)
    gold = sum(a.gold_calls for a in agents)
    ttfts = [t for a in agents for t in a.ttft_steps_ms]
    checks: Counter[str] = Counter()
    for r in records:
        score = r.scores.get(AGENT_CRITERION)
        if score is not None:
            checks.update(name for name, v in score.parts.items() if v < 1.0)
    failed = [r for r, accepted in trials if not accepted]
    return AgentCard(
        tasks=len(ids), trials=len(records), k=k,
        pass_at_1=bootstrap_mean([_mean([float(x) for x in by_task[cid]]) for cid in ids], seed, weights),
        pass_hat_k=bootstrap_mean(hat[k], seed, weights) if k >= 1 and ids else bootstrap_mean([], seed),
        pass_hat={str(j): _weighted(v, weights) for j, v in hat.items()},
        successes=successes, spend=spend, cost_per_success=spend / successes if successes else math.inf,
        mean_steps=_mean([float(a.steps) for a in agents]), mean_tokens=_mean([float(a.tokens) for a in agents]),
        mean_wall_ms=_mean([r.e2e_ms for r in records if r.e2e_ms is not None]),
        ttft_step_ms=Percentiles(len(ttfts), quantile(ttfts, 0.5), quantile(ttfts, 0.95), quantile(ttfts, 0.99)),
        tool_precision=matched / made if made else math.nan, tool_recall=matched / gold if gold else math.nan,
        tool_calls=sum(a.tool_calls for a in agents), invalid_calls=sum(a.invalid_calls for a in agents),
        tool_errors=sum(a.tool_errors for a in agents), stops=dict(Counter(a.stop for a in agents)),
        failed_checks=dict(checks),
        failed=tuple(FailedTrial(r.case_id, r.repeat, r.agent.trace_id if r.agent else "", _reason(r),
                                 r.agent.trace if r.agent else ()) for r in failed[:FAILED_SHOWN]))


def _weighted(values: Sequence[float], weights: Sequence[float]) -> float:
    total = sum(weights)
    return sum(v * w for v, w in zip(values, weights, strict=True)) / total if total else math.nan
