"""The Scorecard record: one row per target, four dimensions, plus regressions, probes, judge and
the decision. Schema ``loadbench.scorecard/1``; ``Scorecard.to_json`` / ``Scorecard.from_json``
are the only (de)serialisers (nested records are mapped by their type hints, so a field added to
a record is written and read without a second place to change).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from loadbench.errors import ConfigError, InputError
from loadbench.eval.classify import ClassificationReport
from loadbench.eval.decision import CandidateDecision
from loadbench.eval.stats import Interval, sig

SCHEMA = "loadbench.scorecard/1"


@dataclass(frozen=True, slots=True)
class CriterionCard:
    name: str
    type: str
    weight: float
    threshold: float
    n: int  # outputs scored
    score: Interval  # mean score, bootstrap over cases
    pass_rate: Interval
    parts: dict[str, float]  # per field (json_fields) or rubric item (judge): mean score
    pass_at_k: float | None = None  # code_tests: mean over cases of pass@k (criterion k) across repeats


@dataclass(frozen=True, slots=True)
class QualityCard:
    acceptable: Interval  # acceptable-outcome rate (outputs passing the accept rule / outputs)
    score: Interval  # weighted mean of criterion scores
    criteria: tuple[CriterionCard, ...]
    by_kind: dict[str, Interval]  # acceptable rate per case kind
    classification: ClassificationReport | None


@dataclass(frozen=True, slots=True)
class CostCard:
    currency: str
    calls: int
    spend: float  # all attempts incl. failures, with the cache as observed
    spend_nocache: float
    per_request: float
    per_completed: float  # spend / calls that returned an output
    per_acceptable: Interval
    per_acceptable_nocache: Interval
    cache_hit_rate: float
    mean_input_tokens: float
    mean_output_tokens: float
    cost_per_quality_point: Interval | None  # vs the incumbent (ICER, per request per point)
    dominated: bool
    price_source: str
    price_as_of: str
    stale_days: int | None


@dataclass(frozen=True, slots=True)
class Percentiles:
    n: int
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True, slots=True)
class LatencyCard:
    source: str  # "eval calls" or the run folder it came from
    ttft_ms: Percentiles
    e2e_ms: Percentiles


@dataclass(frozen=True, slots=True)
class ConsistencyCard:
    k: int
    pass_hat_k: Interval
    pass_at_k: float
    pass_rate: float
    flip_rate: float
    spread: float
    json_valid: float
    key_agreement: float
    field_agreement: float
    distinct: float
    text_similarity: float
    pair_agreement: Interval


@dataclass(frozen=True, slots=True)
class RegressionResult:
    case_id: str
    passes: int
    n: int

    @property
    def passed(self) -> bool:
        return self.n > 0 and self.passes == self.n


@dataclass(frozen=True, slots=True)
class ProbeResult:
    probe: str
    case_id: str
    outcome: str  # e.g. clean_error | truncation_flag | silent_truncation | ok | refused | ...
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class PairwiseCard:
    judge: str
    against: str
    pairs: int
    wins: int
    ties: int
    losses: int
    win_rate: Interval  # (wins + ties/2) / pairs, Wilson


@dataclass(frozen=True, slots=True)
class FailedTrial:
    task: str
    repeat: int
    trace_id: str  # its steps in traces.jsonl
    reason: str
    trace: tuple[str, ...]  # the steps, short


@dataclass(frozen=True, slots=True)
class AgentCard:
    """An agent suite's figures for one target (formulas: ``agentstats``, docs/eval.md)."""

    tasks: int
    trials: int
    k: int
    pass_at_1: Interval
    pass_hat_k: Interval
    pass_hat: dict[str, float]  # pass^j for j = 1..k (point estimates)
    successes: int
    spend: float
    cost_per_success: float
    mean_steps: float
    mean_tokens: float
    mean_wall_ms: float
    ttft_step_ms: Percentiles
    tool_precision: float
    tool_recall: float
    tool_calls: int
    invalid_calls: int
    tool_errors: int
    stops: dict[str, int]  # why the loops stopped: "answer", "max_steps", ...
    failed_checks: dict[str, int]  # trials failing each hard check (state, facts, forbidden, limit)
    failed: tuple[FailedTrial, ...]


@dataclass(frozen=True, slots=True)
class TargetCard:
    name: str
    model: str
    calls: int
    errors: int
    quality: QualityCard
    cost: CostCard | None
    latency: LatencyCard
    consistency: ConsistencyCard
    regressions: tuple[RegressionResult, ...]
    probes: tuple[ProbeResult, ...]
    pairwise: tuple[PairwiseCard, ...]
    agent: AgentCard | None = None


@dataclass(frozen=True, slots=True)
class JudgeStats:
    name: str
    calls: int
    cached: int
    spend: float
    position_consistency: float | None  # share of pairs whose two orders agree


@dataclass(frozen=True, slots=True)
class JudgeCard:
    blind: bool
    judges: tuple[JudgeStats, ...]
    panel_agreement: float | None  # mean pairwise share of equal pass/fail verdicts between judges
    panel_kappa: float | None  # Fleiss' kappa of the pass/fail verdicts
    spend: float


@dataclass(frozen=True, slots=True)
class Inconsistent:
    target: str
    case_id: str
    pass_rate: float
    outputs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: str
    incumbent: str
    candidates: tuple[CandidateDecision, ...]


@dataclass(frozen=True, slots=True)
class Scorecard:
    name: str
    created_utc: str
    suite: str
    dataset_hash: str
    cases: int
    repeats: int
    sessions: int
    targets: tuple[TargetCard, ...]
    judge: JudgeCard | None
    decision: Decision | None
    least_consistent: tuple[Inconsistent, ...]
    warnings: tuple[str, ...]

    def target(self, name: str) -> TargetCard:
        for t in self.targets:
            if t.name == name:
                return t
        raise InputError(f"no target {name!r} in scorecard {self.name!r}")

    @property
    def regressions_failed(self) -> tuple[tuple[str, str], ...]:
        return tuple((t.name, r.case_id) for t in self.targets for r in t.regressions if not r.passed)

    def to_json(self) -> dict[str, Any]:
        out = _dump(self)
        assert isinstance(out, dict)
        return {"schema": SCHEMA, **out}

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str = "scorecard.json") -> Scorecard:
        if obj.get("schema") != SCHEMA:
            raise ConfigError(where, "schema", f"{obj.get('schema')!r} is not a scorecard",
                              f"expected {SCHEMA!r} (a folder written by loadbench eval)")
        loaded = _load(cls, {k: v for k, v in obj.items() if k != "schema"})
        assert isinstance(loaded, Scorecard)
        return loaded


def _dump(obj: Any) -> Any:
    if isinstance(obj, Interval | ClassificationReport | CandidateDecision):
        return obj.to_json()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _dump(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [_dump(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): _dump(v) for k, v in obj.items()}
    if isinstance(obj, float):
        return sig(obj)
    return obj


def _load(tp: Any, obj: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if obj is None else _load(args[0], obj)
    if tp in (Interval, ClassificationReport, CandidateDecision):
        return tp.from_json(obj)
    if origin is tuple:
        return tuple(_load(typing.get_args(tp)[0], x) for x in obj)
    if origin is dict:
        return {k: _load(typing.get_args(tp)[1], v) for k, v in obj.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        # a field added later has a default; older scorecards simply lack it
        return tp(**{f.name: _load(hints[f.name], obj[f.name]) for f in dataclasses.fields(tp) if f.name in obj})
    if tp is float:
        return float(obj) if obj is not None else math.nan
    return obj
