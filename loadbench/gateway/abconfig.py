"""Config of the request log, the admin API and experiments: pydantic at the edge, frozen specs after.

``loadbench.gateway.config`` embeds these models in its own (``request_log:``, ``admin:`` and a
virtual model's ``experiment:``) and calls the ``compile_*`` functions, so every error names its
field through the one translator (``loadbench.config.validation``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import orjson
from pydantic import Field, PositiveFloat, PositiveInt

from loadbench.ab.criteria import Criteria
from loadbench.config.pricing import load_pricing
from loadbench.config.validation import StrictModel
from loadbench.errors import ConfigError
from loadbench.eval.criteria import RubricItem
from loadbench.eval.scorecard import Scorecard
from loadbench.pricing import Price, Pricing
from loadbench.results.log_source import describe

LogBodies = Literal["all", "sampled", "experiments", "none"]
LogBackend = Literal["sqlite", "postgres"]
LOCAL_STATE_FILE = "gateway-state.db"  # with backend: postgres and no path, beside the config file


class RequestLogModel(StrictModel):
    backend: LogBackend = "sqlite"
    # sqlite: the log's file, shared by the gateway's --workers processes. postgres: the file of the
    # local shared state (experiment records of this host's processes), gateway-state.db by default
    path: str | None = Field(default=None, min_length=1)
    dsn_env: str | None = Field(default=None, min_length=1)  # postgres: the variable holding the DSN
    connect_timeout_s: PositiveFloat = Field(default=2.0, le=60)  # postgres: a connection attempt, at most
    statement_timeout_ms: PositiveInt = Field(default=5000, le=600_000)  # postgres: a batch's write, at most
    batch_rows: PositiveInt = 256  # a batch is written when it has this many rows ...
    flush_ms: PositiveFloat = 200.0  # ... or when it is this old
    queue_rows: PositiveInt = 4096  # records not yet on disk, at most; beyond it records are dropped
    retention_days: PositiveFloat | None = 30.0
    max_rows: PositiveInt | None = 1_000_000
    log_bodies: LogBodies = "none"
    body_sample: float = Field(default=0.01, ge=0, le=1)  # for log_bodies: sampled
    redact: list[str] = Field(default_factory=list)  # regular expressions replaced by [REDACTED]
    pricing: str | None = None  # a pricing.yaml (docs/eval.md): the log's cost_usd column
    # /metrics breaks requests, errors, TTFT and cost down by these metadata keys; past
    # metrics_values_max distinct values of a key, further values count as "other"
    metrics_by: list[str] = Field(default_factory=list, max_length=5)
    metrics_values_max: PositiveInt = Field(default=20, le=200)


class AdminModel(StrictModel):
    api_keys_env: str = Field(min_length=1)  # comma-separated admin keys


class RollbackModel(StrictModel):
    window_s: PositiveFloat = 60.0
    min_requests: PositiveInt = 20
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    max_p95_ttft_ms: PositiveFloat | None = None
    max_p95_e2e_ms: PositiveFloat | None = None
    min_quality: float | None = Field(default=None, ge=0, le=1)  # mean feedback score, judged with min_requests of it
    failed_checks: PositiveInt = 2  # consecutive failed checks before the rollback trips
    interval_s: PositiveFloat = 1.0


class SuccessModel(StrictModel):
    """The pre-registered criteria ``loadbench ab`` judges (docs/ab.md)."""

    error_rate_margin: float = Field(default=0.01, ge=0, le=1)
    cost_ratio_max: PositiveFloat = 1.10
    quality_ratio_min: float = Field(default=0.97, ge=0, le=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_requests: PositiveInt = 100  # per arm, before any verdict other than CONTINUE


class RubricItemModel(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = Field(min_length=1)


class AnswerJudgeModel(StrictModel):
    """The eval judge grading a sampled fraction of both arms' answers off the request path (docs/ab.md)."""

    url: str = Field(pattern=r"^https?://")  # an OpenAI-compatible base URL (.../v1)
    model: str = Field(min_length=1)
    api_key_env: str | None = None
    fraction: float = Field(default=0.05, ge=0, le=1)  # of the experiment's answered requests, both arms
    budget_usd_per_day: PositiveFloat | None = None  # judge spend since 00:00 UTC (all workers), then none
    input_per_mtok: float = Field(default=0.0, ge=0)  # the judge's price, for its spend
    output_per_mtok: float = Field(default=0.0, ge=0)
    max_concurrency: PositiveInt = 8  # judge calls in flight per worker; beyond it a sample is dropped
    timeout_s: PositiveFloat = 30.0
    rubric: list[RubricItemModel] = Field(min_length=1)
    strip_names: list[str] = Field(default_factory=list)  # more names hidden from the judge (providers, ...)


@dataclass(frozen=True, slots=True)
class AnswerJudgeSpec:
    url: str
    model: str
    api_key: str | None = field(repr=False)
    fraction: float
    budget_usd_per_day: float | None
    input_per_mtok: float
    output_per_mtok: float
    max_concurrency: int
    timeout_s: float
    rubric: tuple[RubricItem, ...]
    strip_names: tuple[str, ...]  # the arms' target and model names, and strip_names


class CheckModel(StrictModel):
    check_regex: str | None = None  # the answer's text must contain a match
    check_json: bool = False  # the answer's text must be JSON
    judge: AnswerJudgeModel | None = None


@dataclass(frozen=True, slots=True)
class AnswerCheck:
    regex: re.Pattern[str] | None
    json: bool


def compile_check(regex: str | None, json: bool, path: str, where: str) -> AnswerCheck | None:
    if not regex and not json:
        return None
    try:
        pattern = re.compile(regex) if regex else None
    except re.error as exc:
        raise ConfigError(path, f"{where}.check_regex", f"not a regular expression: {exc}",
                          "write a Python regular expression") from None
    return AnswerCheck(pattern, json)


class ExperimentModel(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    incumbent: str = Field(min_length=1)
    candidate: str = Field(min_length=1)
    weight: float = Field(default=5.0, ge=0, le=100)  # percent of the traffic sent to the candidate
    assign_by: str = Field(default="random", pattern=r"^(random|metadata\.[A-Za-z0-9_.-]+)$")
    success: SuccessModel = SuccessModel()
    rollback: RollbackModel = RollbackModel()
    quality: CheckModel = CheckModel()  # an inline check of both arms' answers: a score of 1 or 0 each


class ShadowModel(StrictModel):
    targets: list[str] = Field(min_length=1)
    fraction: float = Field(default=0.1, ge=0, le=1)  # of the virtual model's requests, each sent to every target
    max_concurrency: PositiveInt = 32  # shadow requests in flight per worker; beyond it a shadow is dropped
    budget_usd_per_day: PositiveFloat | None = None  # shadow spend since 00:00 UTC (all workers), then none
    exclude_metadata: dict[str, str] = Field(default_factory=dict)  # requests with any of these are never shadowed


@dataclass(frozen=True, slots=True)
class ShadowSpec:
    targets: tuple[str, ...]
    fraction: float
    max_concurrency: int
    budget_usd_per_day: float | None
    exclude_metadata: tuple[tuple[str, str], ...]


def compile_shadow(model: ShadowModel, targets: list[str], path: str, where: str) -> ShadowSpec:
    for i, name in enumerate(model.targets):
        if name not in targets:
            raise ConfigError(path, f"{where}.targets[{i}]", f"unknown target {name!r}",
                              "use a name from the top-level targets list: " + ", ".join(targets))
    return ShadowSpec(tuple(model.targets), model.fraction, model.max_concurrency, model.budget_usd_per_day,
                      tuple(sorted(model.exclude_metadata.items())))


class CostRoutingModel(StrictModel):
    quality_floor: float = Field(ge=0, le=1)  # the lower 95% bound of a target's acceptable rate must reach it
    scorecard: str | None = None  # a loadbench eval scorecard.json: quality and cost before live data exists
    min_feedback: PositiveInt = 30  # live feedback scores a target needs before they replace the scorecard
    window_requests: PositiveInt = 500  # the newest requests per target the live estimates are taken over
    # a non-streamed answer that fails the check is retried on the next target (docs/ab.md)
    escalate_on_check_failure: bool = False
    check_regex: str | None = None  # the answer's text must contain a match
    check_json: bool = False  # the answer's text must be JSON


@dataclass(frozen=True, slots=True)
class Estimate:
    """What cost routing knows of a target: its quality's lower bound and its cost per request."""

    quality_low: float | None
    cost_per_request: float | None
    source: str  # "scorecard" | "live" | "price"


@dataclass(frozen=True, slots=True)
class CostRoutingSpec:
    quality_floor: float
    prior: dict[str, Estimate]  # from the scorecard, by target name
    min_feedback: int
    window_requests: int
    escalate: bool = False
    check: AnswerCheck | None = None


def compile_cost_routing(model: CostRoutingModel, path: str, where: str) -> CostRoutingSpec:
    prior: dict[str, Estimate] = {}
    if model.scorecard:
        card_path = Path(model.scorecard)
        if not card_path.is_absolute():
            card_path = Path(path).parent / card_path
        try:
            raw = orjson.loads(card_path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(path, f"{where}.scorecard", f"cannot read {card_path}: {exc}",
                              "point it at the scorecard.json a loadbench eval run wrote") from None
        card = Scorecard.from_json(raw, str(card_path))
        for t in card.targets:
            prior[t.name] = Estimate(t.quality.acceptable.low, t.cost.per_request if t.cost else None, "scorecard")
    if model.escalate_on_check_failure and not (model.check_regex or model.check_json):
        raise ConfigError(path, f"{where}.escalate_on_check_failure", "there is no check to fail",
                          "add check_regex or check_json: true")
    return CostRoutingSpec(model.quality_floor, prior, model.min_feedback, model.window_requests,
                           model.escalate_on_check_failure,
                           compile_check(model.check_regex, model.check_json, path, where))


@dataclass(frozen=True, slots=True)
class RequestLogSpec:
    path: str
    batch_rows: int
    flush_s: float
    queue_rows: int
    retention_s: float | None
    max_rows: int | None
    log_bodies: LogBodies
    body_sample: float
    redact: tuple[re.Pattern[str], ...]
    pricing: Pricing | None
    metrics_by: tuple[str, ...] = ()
    metrics_values_max: int = 20
    backend: LogBackend = "sqlite"
    dsn: str | None = field(default=None, repr=False)  # from the environment only; never logged
    dsn_name: str = ""  # how messages name the database: host, port, database and the variable
    connect_timeout_s: float = 2.0
    statement_timeout_ms: int = 5000

    def target_prices(self, models: Mapping[str, str]) -> dict[str, Price | None]:
        """Each target's price by its name, else by its model's (``models``: target -> model); empty
        without a pricing file."""
        if self.pricing is None:
            return {}
        prices = self.pricing.prices
        return {name: prices.get(name) or prices.get(model) for name, model in models.items()}


@dataclass(frozen=True, slots=True)
class Guardrails:
    window_s: float
    min_requests: int
    max_error_rate: float | None
    max_p95_ttft_ms: float | None
    max_p95_e2e_ms: float | None
    failed_checks: int
    interval_s: float
    min_quality: float | None = None


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    name: str
    incumbent: str  # target names
    candidate: str
    weight: float  # the configured start; the live weight is in the log's experiments table
    assign_key: str | None  # a metadata key, or None for random assignment
    criteria: Criteria
    guardrails: Guardrails
    check: AnswerCheck | None = None
    judge: AnswerJudgeSpec | None = None


def compile_judge(model: AnswerJudgeModel, names: list[str], env: dict[str, str], path: str,
                  where: str) -> AnswerJudgeSpec:
    key = None
    if model.api_key_env:
        key = env.get(model.api_key_env)
        if not key:
            raise ConfigError(path, f"{where}.api_key_env", f"environment variable {model.api_key_env} is not set",
                              "export it or remove api_key_env")
    return AnswerJudgeSpec(model.url.rstrip("/"), model.model, key, model.fraction, model.budget_usd_per_day,
                           model.input_per_mtok, model.output_per_mtok, model.max_concurrency, model.timeout_s,
                           tuple(RubricItem(r.name, r.description) for r in model.rubric),
                           tuple(names + model.strip_names))


def compile_request_log(model: RequestLogModel, path: str, env: Mapping[str, str]) -> RequestLogSpec:
    patterns = []
    for i, text in enumerate(model.redact):
        try:
            patterns.append(re.compile(text))
        except re.error as exc:
            raise ConfigError(path, f"request_log.redact[{i}]", f"not a regular expression: {exc}",
                              "write a Python regular expression") from None
    dsn, dsn_name = _log_dsn(model, path, env)
    log_path = Path(model.path or LOCAL_STATE_FILE)
    if not log_path.is_absolute():
        log_path = Path(path).parent / log_path
    pricing = None
    if model.pricing:
        price_path = Path(model.pricing)
        pricing = load_pricing(price_path if price_path.is_absolute() else Path(path).parent / price_path)
    return RequestLogSpec(
        path=str(log_path), batch_rows=model.batch_rows, flush_s=model.flush_ms / 1000.0,
        queue_rows=max(model.queue_rows, model.batch_rows),
        retention_s=model.retention_days * 86400.0 if model.retention_days else None, max_rows=model.max_rows,
        log_bodies=model.log_bodies, body_sample=model.body_sample, redact=tuple(patterns), pricing=pricing,
        metrics_by=tuple(model.metrics_by), metrics_values_max=model.metrics_values_max, backend=model.backend,
        dsn=dsn, dsn_name=dsn_name, connect_timeout_s=model.connect_timeout_s,
        statement_timeout_ms=model.statement_timeout_ms)


def _log_dsn(model: RequestLogModel, path: str, env: Mapping[str, str]) -> tuple[str | None, str]:
    """(the DSN, how to name it) of a PostgreSQL log; (None, "") for SQLite. The DSN comes from the
    environment only, so it is never in a config file, a plan or a log."""
    if model.backend == "sqlite":
        if model.path is None:
            raise ConfigError(path, "request_log.path", "is required with backend: sqlite",
                              "name the log's file, e.g. path: gateway.db")
        if model.dsn_env is not None:
            raise ConfigError(path, "request_log.dsn_env", "only applies to backend: postgres",
                              "set backend: postgres or remove dsn_env")
        return None, ""
    if model.dsn_env is None:
        raise ConfigError(path, "request_log.dsn_env", "is required with backend: postgres",
                          "name the environment variable holding the DSN, e.g. dsn_env: LOADBENCH_LOG_DSN")
    dsn = env.get(model.dsn_env)
    if not dsn:
        raise ConfigError(path, "request_log.dsn_env", f"environment variable {model.dsn_env} is not set",
                          "export it (postgresql://user:password@host:5432/database)")
    return dsn, f"{describe(dsn)} (from {model.dsn_env})"


def compile_experiment(model: ExperimentModel, targets: list[str], path: str, where: str,
                       env: dict[str, str] | None = None, names: list[str] | None = None) -> ExperimentSpec:
    """``names``: what the judge must not see (the arms' target and model names)."""
    for arm in ("incumbent", "candidate"):
        name = getattr(model, arm)
        if name not in targets:
            raise ConfigError(path, f"{where}.{arm}", f"{name!r} is not a target of this virtual model",
                              "name one of: " + ", ".join(targets))
    if model.incumbent == model.candidate:
        raise ConfigError(path, f"{where}.candidate", "is the incumbent", "name another target")
    s = model.success
    r = model.rollback
    return ExperimentSpec(
        name=model.name, incumbent=model.incumbent, candidate=model.candidate, weight=model.weight,
        assign_key=None if model.assign_by == "random" else model.assign_by.removeprefix("metadata."),
        criteria=Criteria(s.error_rate_margin, s.cost_ratio_max, s.quality_ratio_min, s.alpha, s.min_requests),
        guardrails=Guardrails(r.window_s, r.min_requests, r.max_error_rate, r.max_p95_ttft_ms, r.max_p95_e2e_ms,
                              r.failed_checks, r.interval_s, r.min_quality),
        check=compile_check(model.quality.check_regex, model.quality.check_json, path, f"{where}.quality"),
        judge=None if model.quality.judge is None else compile_judge(
            model.quality.judge, names or [model.incumbent, model.candidate], env or {}, path,
            f"{where}.quality.judge"))
