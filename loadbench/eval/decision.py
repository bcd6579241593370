"""The pre-declared decision rule: non-inferiority of a candidate against the incumbent.

Each criterion is a statistic θ with a 95% bootstrap interval [lo, hi] (cases resampled in pairs
for quality and cost, calls resampled for latency):
    quality      θ = Q_c − r·Q_i  (Q = acceptable-outcome rate, r = quality_ratio_min)
                 pass when lo > 0, fail when hi < 0
    consistency  θ = K_c − r·K_i  (K = mean pass^k, r = consistency_ratio_min), as quality
    cost         θ = C_c − r·C_i  (C = cost per acceptable outcome, r = cost_ratio_max)
                 pass when hi <= 0, fail when lo > 0
    p95 e2e/ttft θ = P95_c − r·P95_i (per call, r = p95_*_ratio_max), as cost
A criterion whose interval straddles its bound is "unsure". Verdict: REJECT when any criterion
fails (each failing one is named), else INCONCLUSIVE when any is unsure or fewer than
``min_cases`` cases are shared, else ACCEPT.

The cost-to-quality ratio (an incremental cost-effectiveness ratio): ICER = (c_c − c_i) /
(100·(Q_c − Q_i)), the extra cost per request for each percentage point of acceptable outcomes;
"dominated" = the candidate costs more per acceptable outcome and its Q is lower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from loadbench.eval.stats import Interval, bootstrap_indices, paired_bootstrap, percentile_interval, sig

Verdict = Literal["ACCEPT", "REJECT", "INCONCLUSIVE"]
CheckResult = Literal["pass", "fail", "unsure"]
MIN_CASES = 20


@dataclass(frozen=True, slots=True)
class Check:
    criterion: str  # quality | consistency | cost | p95_e2e | p95_ttft
    limit: float  # the ratio bound
    candidate: float
    incumbent: float
    theta: Interval
    result: CheckResult

    @property
    def ratio(self) -> float:
        return self.candidate / self.incumbent if self.incumbent else math.inf

    def to_json(self) -> dict[str, Any]:
        return {"criterion": self.criterion, "limit": self.limit, "candidate": sig(self.candidate),
                "incumbent": sig(self.incumbent), "ratio": sig(self.ratio), "theta": self.theta.to_json(),
                "result": self.result}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Check:
        return cls(obj["criterion"], float(obj["limit"]), float(obj["candidate"]), float(obj["incumbent"]),
                   Interval.from_json(obj["theta"]), obj["result"])


@dataclass(frozen=True, slots=True)
class CandidateDecision:
    candidate: str
    incumbent: str
    verdict: Verdict
    reason: str
    cases: int
    checks: tuple[Check, ...]

    def to_json(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "incumbent": self.incumbent, "verdict": self.verdict,
                "reason": self.reason, "cases": self.cases, "checks": [c.to_json() for c in self.checks]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> CandidateDecision:
        return cls(obj["candidate"], obj["incumbent"], obj["verdict"], obj["reason"], int(obj["cases"]),
                   tuple(Check.from_json(c) for c in obj["checks"]))


@dataclass(frozen=True, slots=True)
class PairedCases:
    """Per shared case (same order for both targets): acceptable share, spend, acceptable count,
    pass^k; and per call latencies."""

    q_c: npt.NDArray[np.float64]
    q_i: npt.NDArray[np.float64]
    spend_c: npt.NDArray[np.float64]
    spend_i: npt.NDArray[np.float64]
    acc_c: npt.NDArray[np.float64]
    acc_i: npt.NDArray[np.float64]
    k_c: npt.NDArray[np.float64]
    k_i: npt.NDArray[np.float64]
    e2e_c: Sequence[float]
    e2e_i: Sequence[float]
    ttft_c: Sequence[float]
    ttft_i: Sequence[float]


def _higher_is_better(name: str, limit: float, c: float, i: float, theta: Interval) -> Check:
    result: CheckResult = "pass" if theta.low > 0 else "fail" if theta.high < 0 else "unsure"
    return Check(name, limit, c, i, theta, result)


def _lower_is_better(name: str, limit: float, c: float, i: float, theta: Interval) -> Check:
    if not (math.isfinite(theta.low) and math.isfinite(theta.high)):
        return Check(name, limit, c, i, theta, "unsure")
    result: CheckResult = "pass" if theta.high <= 0 else "fail" if theta.low > 0 else "unsure"
    return Check(name, limit, c, i, theta, result)


def _ratio_of_sums(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64],
                   idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    d = den[idx].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, num[idx].sum(axis=1) / np.where(d > 0, d, 1.0), np.inf)


def _p95_check(name: str, limit: float, c: Sequence[float], i: Sequence[float], seed: int) -> Check:
    if not c or not i:
        return Check(name, limit, math.nan, math.nan, Interval(math.nan, math.nan, math.nan), "unsure")
    a, b = np.asarray(c, dtype=np.float64), np.asarray(i, dtype=np.float64)
    pa, pb = float(np.quantile(a, 0.95)), float(np.quantile(b, 0.95))
    da = np.quantile(a[bootstrap_indices(len(a), seed)], 0.95, axis=1)
    db = np.quantile(b[bootstrap_indices(len(b), seed + 1)], 0.95, axis=1)
    return _lower_is_better(name, limit, pa, pb, percentile_interval(pa - limit * pb, da - limit * db))


def decide(candidate: str, incumbent: str, data: PairedCases, *, quality_ratio_min: float | None,
           cost_ratio_max: float | None, p95_e2e_ratio_max: float | None, p95_ttft_ratio_max: float | None,
           consistency_ratio_min: float | None, min_cases: int = MIN_CASES, seed: int = 0) -> CandidateDecision:
    n = len(data.q_c)
    checks: list[Check] = []
    if quality_ratio_min is not None:
        r = quality_ratio_min
        theta = paired_bootstrap(lambda idx: data.q_c[idx].mean(axis=1) - r * data.q_i[idx].mean(axis=1), n, seed)
        checks.append(_higher_is_better("quality", r, float(data.q_c.mean()), float(data.q_i.mean()), theta))
    if consistency_ratio_min is not None:
        r = consistency_ratio_min
        theta = paired_bootstrap(lambda idx: data.k_c[idx].mean(axis=1) - r * data.k_i[idx].mean(axis=1), n, seed)
        checks.append(_higher_is_better("consistency", r, float(data.k_c.mean()), float(data.k_i.mean()), theta))
    if cost_ratio_max is not None:
        r = cost_ratio_max

        def cost_theta(idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
            return _ratio_of_sums(data.spend_c, data.acc_c, idx) - r * _ratio_of_sums(data.spend_i, data.acc_i, idx)

        ident = np.arange(n, dtype=np.int64)[None, :]
        cc = float(_ratio_of_sums(data.spend_c, data.acc_c, ident)[0]) if n else math.nan
        ci = float(_ratio_of_sums(data.spend_i, data.acc_i, ident)[0]) if n else math.nan
        checks.append(_lower_is_better("cost", r, cc, ci, paired_bootstrap(cost_theta, n, seed)))
    if p95_e2e_ratio_max is not None:
        checks.append(_p95_check("p95_e2e", p95_e2e_ratio_max, data.e2e_c, data.e2e_i, seed))
    if p95_ttft_ratio_max is not None:
        checks.append(_p95_check("p95_ttft", p95_ttft_ratio_max, data.ttft_c, data.ttft_i, seed))
    failed = [c.criterion for c in checks if c.result == "fail"]
    unsure = [c.criterion for c in checks if c.result == "unsure"]
    verdict: Verdict
    if failed:
        verdict, reason = "REJECT", "fails " + ", ".join(failed)
    elif n < min_cases:
        verdict, reason = "INCONCLUSIVE", f"only {n} shared cases (the rule needs at least {min_cases})"
    elif unsure:
        verdict, reason = "INCONCLUSIVE", "not enough cases to tell on " + ", ".join(unsure)
    else:
        verdict, reason = "ACCEPT", "non-inferior on every criterion"
    return CandidateDecision(candidate, incumbent, verdict, reason, n, tuple(checks))


def overall(decisions: Sequence[CandidateDecision]) -> Verdict:
    if any(d.verdict == "REJECT" for d in decisions):
        return "REJECT"
    if any(d.verdict == "INCONCLUSIVE" for d in decisions):
        return "INCONCLUSIVE"
    return "ACCEPT"


def icer(cost_c: npt.NDArray[np.float64], cost_i: npt.NDArray[np.float64], q_c: npt.NDArray[np.float64],
         q_i: npt.NDArray[np.float64], seed: int = 0) -> Interval:
    """Extra cost per request per percentage point of acceptable outcomes (paired over cases)."""
    def stat(idx: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        dq = 100.0 * (q_c[idx].mean(axis=1) - q_i[idx].mean(axis=1))
        dc = cost_c[idx].mean(axis=1) - cost_i[idx].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(dq != 0, dc / np.where(dq != 0, dq, 1.0), np.nan)
    return paired_bootstrap(stat, len(q_c), seed)
