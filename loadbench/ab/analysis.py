"""One experiment's arms from its logged requests, the pre-registered criteria and the verdict. Pure.

Per arm: requests (client disconnects left out), error rate (outcome other than ok) with its Wilson
interval, quality (mean feedback score, accepted = 1) with its Wilson/normal interval, cost per request
(all attempts' spend over all requests) and per acceptable outcome (the same spend over the requests
that were ok and, where feedback exists, accepted), TTFT and E2E P50/P95/P99 from HDR histograms.

Criteria, each a non-inferiority test judged on an always-valid confidence sequence
(``loadbench.ab.sequential``) at α / (criteria measured) each:
    errors   D = p_c − p_i − error_rate_margin        pass: high < 0   fail: low > 0
    cost     D = c̄_c − cost_ratio_max · c̄_i           pass: high < 0   fail: low > 0
    quality  D = q_c − quality_ratio_min · q_i        pass: low > 0    fail: high < 0
Verdict: ROLLBACK when a guardrail already tripped or a criterion fails (the first named), CONTINUE
while an arm has fewer than ``min_requests`` or a criterion is undecided (with the estimated requests
still needed), PROMOTE when every measured criterion passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from loadbench.ab.criteria import Criteria
from loadbench.ab.sequential import Bound, bernoulli_variance, growth_needed, sequence
from loadbench.eval.stats import wilson
from loadbench.metrics.quantile import nearest_rank

ARMS = ("incumbent", "candidate")
TIMELINE_BUCKETS = 12


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    arm: str
    ts_ms: int
    outcome: str
    ttft_ms: float | None
    e2e_ms: float | None
    cost_usd: float | None
    quality: float | None = None  # feedback score in [0, 1] (accepted = 1), None without feedback
    group: str = ""


@dataclass(frozen=True, slots=True)
class Percentiles:
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True, slots=True)
class ArmSummary:
    arm: str
    requests: int
    errors: int
    error_rate: float
    error_rate_ci: tuple[float, float]
    quality: float | None
    quality_ci: tuple[float, float] | None
    quality_n: int
    cost_usd: float
    cost_per_request: float | None
    cost_per_acceptable: float | None
    ttft: Percentiles
    e2e: Percentiles


@dataclass(frozen=True, slots=True)
class CriterionResult:
    name: str  # errors | cost | quality
    rule: str
    estimate: float | None
    low: float | None
    high: float | None
    status: str  # pass | fail | undecided | not measured
    more_requests: int | None = None  # for undecided: requests still needed at the current estimate


@dataclass(frozen=True, slots=True)
class Analysis:
    experiment: str
    group: str  # "" for all requests
    arms: tuple[ArmSummary, ...]
    criteria: tuple[CriterionResult, ...]
    verdict: str  # PROMOTE | CONTINUE | ROLLBACK
    reason: str
    more_requests: int | None
    timeline: tuple[tuple[int, str, int, int], ...]  # (bucket start ms, arm, requests, errors)
    judge_calls: int = 0  # sampled judge grades (experiment.quality.judge), booked on neither arm
    judge_spend_usd: float = 0.0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _percentiles(values: Sequence[float]) -> Percentiles:
    """P50 / P95 / P99 by nearest rank: the estimator the gateway's P95 guardrail uses on the same rows."""
    return Percentiles(*(nearest_rank(values, q) for q in (50, 95, 99)))


def _mean_var(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((x - mean) ** 2 for x in values) / (n - 1) if n > 1 else 0.0
    return mean, var


def summarize_arm(arm: str, requests: Sequence[LoggedRequest]) -> ArmSummary:
    judged = [r for r in requests if r.outcome != "client_gone"]
    n = len(judged)
    errors = sum(r.outcome != "ok" for r in judged)
    rated = [r.quality for r in judged if r.quality is not None]
    quality = sum(rated) / len(rated) if rated else None
    quality_ci = None
    if rated:
        interval = wilson(round(sum(rated)), len(rated))
        quality_ci = (interval.low, interval.high)
    spend = sum(r.cost_usd for r in judged if r.cost_usd is not None)
    priced = any(r.cost_usd is not None for r in judged)
    acceptable = sum(r.outcome == "ok" and (r.quality is None or r.quality >= 0.5) for r in judged)
    ci = wilson(errors, n) if n else None
    ok = [r for r in judged if r.outcome == "ok"]
    return ArmSummary(
        arm=arm, requests=n, errors=errors, error_rate=errors / n if n else 0.0,
        error_rate_ci=(ci.low, ci.high) if ci else (0.0, 1.0), quality=quality, quality_ci=quality_ci,
        quality_n=len(rated), cost_usd=spend, cost_per_request=spend / n if priced and n else None,
        cost_per_acceptable=spend / acceptable if priced and acceptable else None,
        ttft=_percentiles([r.ttft_ms for r in ok if r.ttft_ms is not None]),
        e2e=_percentiles([r.e2e_ms for r in ok if r.e2e_ms is not None]))


def _judge(name: str, rule: str, bound: Bound, higher_is_better: bool, v: float, tau2: float, alpha: float,
           total: int) -> CriterionResult:
    good = bound.low > 0 if higher_is_better else bound.high < 0
    bad = bound.high < 0 if higher_is_better else bound.low > 0
    status = "pass" if good else "fail" if bad else "undecided"
    more = None
    if status == "undecided":
        growth = growth_needed(bound.estimate, v, tau2, alpha)
        more = math.ceil(total * (growth - 1)) if growth is not None else None
    return CriterionResult(name, rule, bound.estimate, bound.low, bound.high, status, more)


def judge_criteria(requests: Sequence[LoggedRequest], c: Criteria) -> tuple[CriterionResult, ...]:
    by_arm = {arm: [r for r in requests if r.arm == arm and r.outcome != "client_gone"] for arm in ARMS}
    inc, cand = by_arm["incumbent"], by_arm["candidate"]
    total = len(inc) + len(cand)
    pending: list[tuple[str, str, float, float, float, bool] | CriterionResult] = []
    if inc and cand:
        e_i, e_c = sum(r.outcome != "ok" for r in inc), sum(r.outcome != "ok" for r in cand)
        d = e_c / len(cand) - e_i / len(inc) - c.error_rate_margin
        v = bernoulli_variance(e_c, len(cand)) / len(cand) + bernoulli_variance(e_i, len(inc)) / len(inc)
        pending.append(("errors", f"error rate: candidate − incumbent < {c.error_rate_margin:g}", d, v,
                        max(c.error_rate_margin, 0.005) ** 2, False))
    cost_i = [r.cost_usd for r in inc if r.cost_usd is not None]
    cost_c = [r.cost_usd for r in cand if r.cost_usd is not None]
    if cost_i and cost_c:
        (m_i, v_i), (m_c, v_c) = _mean_var(cost_i), _mean_var(cost_c)
        k = c.cost_ratio_max
        pending.append(("cost", f"cost per request: candidate < {k:g} × incumbent", m_c - k * m_i,
                        v_c / len(cost_c) + k * k * v_i / len(cost_i), (max(abs(k - 1), 0.05) * m_i) ** 2 or 1e-18,
                        False))
    else:
        pending.append(CriterionResult("cost", "cost per request (needs request_log.pricing)", None, None, None,
                                       "not measured"))
    q_i = [r.quality for r in inc if r.quality is not None]
    q_c = [r.quality for r in cand if r.quality is not None]
    if q_i and q_c:
        (m_i, v_i), (m_c, v_c) = _mean_var(q_i), _mean_var(q_c)
        k = c.quality_ratio_min
        v_i, v_c = max(v_i, bernoulli_variance(round(sum(q_i)), len(q_i))), max(v_c, bernoulli_variance(
            round(sum(q_c)), len(q_c)))
        pending.append(("quality", f"quality: candidate > {k:g} × incumbent", m_c - k * m_i,
                        v_c / len(q_c) + k * k * v_i / len(q_i), (max(1 - k, 0.01) * max(m_i, 0.05)) ** 2, True))
    else:
        pending.append(CriterionResult("quality", "quality (needs feedback)", None, None, None, "not measured"))
    measured = sum(not isinstance(p, CriterionResult) for p in pending)
    alpha = c.alpha / max(1, measured)
    out = []
    for p in pending:
        if isinstance(p, CriterionResult):
            out.append(p)
            continue
        name, rule, d, v, tau2, higher = p
        out.append(_judge(name, rule, sequence(d, v, tau2, alpha), higher, v, tau2, alpha, total))
    return tuple(out)


def _timeline(requests: Sequence[LoggedRequest]) -> tuple[tuple[int, str, int, int], ...]:
    if not requests:
        return ()
    t0 = min(r.ts_ms for r in requests)
    span = max(1, max(r.ts_ms for r in requests) - t0 + 1)
    step = math.ceil(span / TIMELINE_BUCKETS)
    counts: dict[tuple[int, str], list[int]] = {}
    for r in requests:
        if r.outcome == "client_gone":
            continue
        cell = counts.setdefault((t0 + (r.ts_ms - t0) // step * step, r.arm), [0, 0])
        cell[0] += 1
        cell[1] += r.outcome != "ok"
    return tuple((t, arm, n, e) for (t, arm), (n, e) in sorted(counts.items()))


def analyze(experiment: str, requests: Sequence[LoggedRequest], c: Criteria, tripped: str | None = None,
            group: str = "") -> Analysis:
    arms = tuple(summarize_arm(arm, [r for r in requests if r.arm == arm]) for arm in ARMS)
    criteria = judge_criteria(requests, c)
    short = [a for a in arms if a.requests < c.min_requests]
    failed = [r for r in criteria if r.status == "fail"]
    undecided = [r for r in criteria if r.status == "undecided"]
    more: int | None = None
    if tripped:
        verdict, reason = "ROLLBACK", f"guardrail tripped: {tripped}"
    elif failed:
        verdict, reason = "ROLLBACK", f"{failed[0].name}: {failed[0].rule} is ruled out"
    elif short:
        verdict = "CONTINUE"
        reason = ", ".join(f"{a.arm} has {a.requests} of the {c.min_requests} requests needed" for a in short)
        share = {a.arm: a.requests for a in arms}
        total = sum(share.values())
        # at the current split, the smaller arm reaches min_requests after this many more requests
        smallest = min(share.values())
        more = math.ceil((c.min_requests - smallest) * total / smallest) if smallest else None
    elif undecided:
        verdict = "CONTINUE"
        reason = "undecided: " + ", ".join(r.name for r in undecided)
        needs = [r.more_requests for r in undecided]
        more = None if None in needs else max(n for n in needs if n is not None)
    else:
        verdict, reason = "PROMOTE", "every measured criterion passes"
    return Analysis(experiment, group, arms, criteria, verdict, reason, more, _timeline(requests))
