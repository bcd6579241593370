"""The suite file (YAML): datasets, rubric, acceptance rule, repeats, targets, pricing, decision.

Validated once, before any request. Every error names the file, the line (found by walking the
YAML node tree to the failing field) and the field, with the fix; a case lacking the ground truth
one of its criteria needs names the dataset file and line. Relative paths are relative to the
suite file. See docs/eval.md for the full schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from loadbench.config.pricing import load_pricing
from loadbench.config.validation import StrictModel, invalid, validate
from loadbench.errors import ConfigError
from loadbench.eval.criteria import Criterion, CriterionType, ListMode, RubricItem
from loadbench.eval.dataset import Case, Dataset, load_dataset, read_text
from loadbench.eval.tasks import Task, load_tasks
from loadbench.eval.yamlfile import parse_model, with_line
from loadbench.pricing import Pricing
from loadbench.protocol import registry


class _RubricModel(StrictModel):
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)


class _CriterionModel(StrictModel):
    name: str = Field(min_length=1)
    type: CriterionType
    weight: float = Field(default=1.0, ge=0)
    threshold: float | None = Field(default=None, ge=0, le=1)
    cases: Literal["all", "with_truth"] = "all"
    value: str | None = None
    pattern: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    list_mode: ListMode = "same_elements"
    aggregator: Literal["average", "all"] = "average"
    tolerance: float = Field(default=0.0, ge=0)
    rel_tolerance: float = Field(default=0.0, ge=0)
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    unit: Literal["words", "tokens"] = "words"
    expect: str = "stop"
    rubric: list[_RubricModel] = Field(default_factory=list)
    k: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _rules(self) -> _CriterionModel:
        if self.type == "judge" and not self.rubric:
            raise invalid("a judge criterion needs a rubric", "add rubric: [{name: ..., description: ...}]", "rubric")
        if self.type == "json_schema" and self.schema_ is None:
            raise invalid("json_schema needs a schema", "add schema: {type: object, ...}", "schema")
        return self


class _MockModel(StrictModel):
    """Options of an embedded ``loadbench mock --answers`` target (flags without the leading --)."""

    accuracy: float = Field(default=1.0, ge=0, le=1)
    format_error_rate: float = Field(default=0.0, ge=0, le=1)
    consistency: float = Field(default=1.0, ge=0, le=1)
    verbosity: int = Field(default=0, ge=0)
    ttft_ms: float = Field(default=20.0, ge=0)
    itl_ms: float = Field(default=1.0, ge=0)
    seed: int = 0
    context_window: int | None = Field(default=None, ge=1)
    overflow: Literal["error", "truncate"] = "error"
    answer_signature: str | None = None
    judge: bool = False
    judge_position_bias: float = Field(default=0.0, ge=0, le=1)
    judge_name_bias: str | None = None
    agent_mistakes: str | None = None  # an agent suite's mock: the mistakes of an incompetent trial


class _TargetModel(StrictModel):
    name: str = Field(min_length=1)
    url: str | None = None
    model: str = Field(min_length=1)
    api_key_env: str | None = None
    protocol: str = "openai"  # the registered dialect the target speaks (anthropic: url is the host)
    region: str | None = None  # bedrock: the AWS region requests are signed for (else AWS_REGION)
    price: str | None = None  # the pricing.yaml model name (default: model)
    context_window: int | None = Field(default=None, ge=1)
    strip_names: list[str] = Field(default_factory=list)
    mock: _MockModel | None = None

    @model_validator(mode="after")
    def _where(self) -> _TargetModel:
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise invalid(f"{self.url!r} is not an http(s) URL", "write the base URL, e.g. http://127.0.0.1:8000/v1",
                          "url")
        if self.url is None and self.mock is None:
            raise invalid("a target needs url: or mock:", "give url: http://HOST:PORT/v1, or mock: {} for an "
                          "embedded mock", "url")
        if self.protocol not in registry.names():
            raise invalid(f"unknown protocol {self.protocol!r}", "use one of: " + ", ".join(registry.names()),
                          "protocol")
        if self.region is not None and self.protocol != "bedrock":
            raise invalid("only a bedrock target is signed for an AWS region",
                          "remove region: or set protocol: bedrock", "region")
        if self.mock is not None and self.protocol != registry.DEFAULT:
            raise invalid("an embedded mock target speaks openai", "remove protocol:, or give url: instead of mock:",
                          "protocol")
        return self


class _RequestModel(StrictModel):
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=0.0, ge=0)
    system: str | None = None


class _DecideModel(StrictModel):
    incumbent: str
    quality_ratio_min: float | None = Field(default=None, gt=0)
    cost_ratio_max: float | None = Field(default=None, gt=0)
    p95_e2e_ratio_max: float | None = Field(default=None, gt=0)
    p95_ttft_ratio_max: float | None = Field(default=None, gt=0)
    consistency_ratio_min: float | None = Field(default=None, gt=0)
    min_cases: int = Field(default=20, ge=1)


class _JudgeModel(StrictModel):
    judges: list[_TargetModel] = Field(min_length=1)
    pairwise: bool = False
    blind: bool = True
    strip_names: list[str] = Field(default_factory=list)


class _AgentModel(StrictModel):
    """Agent tasks (docs/eval.md "Agent tasks"): task files and the loop's limits per trial."""

    tasks: list[str] = Field(min_length=1)
    max_steps: int = Field(default=10, ge=1, le=200)
    max_tokens: int = Field(default=100_000, ge=1)  # prompt + completion tokens of all steps of a trial
    time_budget_s: float = Field(default=120.0, gt=0)


class _SuiteModel(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    datasets: list[str] = Field(default_factory=list)
    criteria: list[_CriterionModel] = Field(default_factory=list)
    agent: _AgentModel | None = None
    accept: list[str] | None = None
    repeats: int = Field(default=3, ge=1, le=100)
    concurrency: int = Field(default=4, ge=1, le=256)
    seed: int = 0
    timeout_s: float = Field(default=60.0, gt=0)
    retries: int = Field(default=0, ge=0, le=10)
    request: _RequestModel = Field(default_factory=_RequestModel)
    targets: list[_TargetModel] = Field(default_factory=list)
    targets_from: str | None = None
    pricing: str | None = None
    decide: _DecideModel | None = None
    judge: _JudgeModel | None = None
    probes: bool = False

    @model_validator(mode="after")
    def _cross(self) -> _SuiteModel:
        if self.agent is None and not self.datasets:
            raise invalid("a suite needs datasets: (or agent: tasks)", "add datasets: [cases.jsonl]", "datasets")
        if self.agent is None and not self.criteria:
            raise invalid("a suite needs criteria:", "add criteria: [{name: ..., type: ...}]", "criteria")
        if self.agent is not None and self.datasets:
            raise invalid("an agent suite scores tasks, not dataset cases", "move the datasets to a suite of their "
                          "own", "datasets")
        for i, c in enumerate(self.criteria):
            if c.type == "agent":
                raise invalid("the agent criterion comes with the agent: block", "remove this criterion",
                              f"criteria[{i}].type")
            if self.agent is not None and c.type != "judge":
                raise invalid(f"an agent suite takes only judge criteria (got {c.type})",
                              "decide the outcome in the task file (gold, predicates, facts, forbidden); a judge "
                              "only for what those cannot decide", f"criteria[{i}].type")
        names = [c.name for c in self.criteria]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise invalid(f"duplicate criterion name {name!r}", "give each criterion its own name",
                              f"criteria[{i}].name")
        for i, name in enumerate(self.accept or []):
            if name not in names:
                raise invalid(f"{name!r} is not a criterion", "one of " + ", ".join(names), f"accept[{i}]")
        if any(c.type == "judge" for c in self.criteria) and self.judge is None:
            raise invalid("a judge criterion needs a judge: block", "add judge: {judges: [{name, url, model}]}",
                          "judge")
        return self


@dataclass(frozen=True, slots=True)
class MockOptions:
    args: tuple[str, ...]  # loadbench mock flags (without --answers)


@dataclass(frozen=True, slots=True)
class EvalTarget:
    name: str
    url: str | None
    model: str
    api_key_env: str | None
    price: str
    context_window: int | None
    strip_names: tuple[str, ...]
    mock: MockOptions | None
    protocol: str = "openai"
    region: str | None = None


@dataclass(frozen=True, slots=True)
class Decide:
    incumbent: str
    quality_ratio_min: float | None
    cost_ratio_max: float | None
    p95_e2e_ratio_max: float | None
    p95_ttft_ratio_max: float | None
    consistency_ratio_min: float | None
    min_cases: int


@dataclass(frozen=True, slots=True)
class JudgeSpec:
    judges: tuple[EvalTarget, ...]
    pairwise: bool
    blind: bool
    strip_names: tuple[str, ...]


AGENT_CRITERION = "task_success"


@dataclass(frozen=True, slots=True)
class AgentSpec:
    tasks: Mapping[str, Task]  # by id
    max_steps: int
    max_tokens: int  # per trial, every step's prompt + completion
    time_budget_s: float


@dataclass(frozen=True, slots=True)
class Suite:
    path: str
    name: str
    description: str
    datasets: tuple[Dataset, ...]
    criteria: tuple[Criterion, ...]
    accept: tuple[str, ...]
    applies: dict[str, str]  # criterion -> "all" | "with_truth"
    repeats: int
    concurrency: int
    seed: int
    timeout_s: float
    retries: int
    max_tokens: int | None
    temperature: float | None
    system: str | None
    targets: tuple[EvalTarget, ...]
    pricing: Pricing | None
    decide: Decide | None
    judge: JudgeSpec | None
    probes: bool
    agent: AgentSpec | None = None

    @property
    def cases(self) -> tuple[Case, ...]:
        return tuple(c for d in self.datasets for c in d.cases)

    @property
    def dataset_hash(self) -> str:
        import hashlib

        return hashlib.sha256("".join(d.sha256 for d in self.datasets).encode()).hexdigest()

    def applies_to(self, criterion: Criterion, case: Case) -> bool:
        need = criterion.needs()
        return self.applies[criterion.name] == "all" or need is None or case.has(need)


def _mock_args(m: _MockModel) -> tuple[str, ...]:
    args: list[str] = []
    for name, value in m.model_dump().items():
        if value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        args.extend([flag] if value is True else [flag, str(value)])
    return tuple(args)


def _target(t: _TargetModel, extra_strip: list[str]) -> EvalTarget:
    return EvalTarget(name=t.name, url=t.url, model=t.model, api_key_env=t.api_key_env, price=t.price or t.model,
                  context_window=t.context_window or (t.mock.context_window if t.mock else None),
                  strip_names=tuple(t.strip_names + extra_strip),
                  mock=MockOptions(_mock_args(t.mock)) if t.mock else None, protocol=t.protocol, region=t.region)


def _criterion(c: _CriterionModel) -> Criterion:
    binary = c.type not in ("json_fields", "judge")
    threshold = c.threshold if c.threshold is not None else (1.0 if binary or c.aggregator == "all" else 0.75)
    return Criterion(
        name=c.name, type=c.type, weight=c.weight, threshold=threshold, value=c.value, pattern=c.pattern,
        schema=c.schema_, list_mode=c.list_mode, aggregator=c.aggregator, tolerance=c.tolerance,
        rel_tolerance=c.rel_tolerance, min=c.min, max=c.max, unit=c.unit, expect=c.expect,
        rubric=tuple(RubricItem(r.name, r.description) for r in c.rubric), k=c.k)


def _targets_from(path: Path, where: str) -> list[dict[str, Any]]:
    from loadbench.config.source import read_yaml

    data = read_yaml(path)
    targets = data.get("targets")
    if not isinstance(targets, list) or not targets:
        raise ConfigError(str(path), "targets", "no targets: list in this file", f"needed by {where}")
    keep = {"name", "url", "model", "api_key_env", "protocol", "region", "price", "context_window", "strip_names"}
    return [{k: v for k, v in t.items() if k in keep} for t in targets if isinstance(t, dict)]


def check_ground_truth(criteria: tuple[Criterion, ...], applies: dict[str, str], datasets: tuple[Dataset, ...]) -> None:
    for ds in datasets:
        for case in ds.cases:
            for c in criteria:
                need = c.needs()
                if need and applies[c.name] == "all" and not case.has(need):
                    line = case.source.rsplit(":", 1)[-1]
                    raise ConfigError(ds.path, f"line {line}: {need}",
                                      f"case {case.id!r} has no {need!r}, which criterion {c.name!r} ({c.type}) needs",
                                      f"add \"{need}\" to the case, or set `cases: with_truth` on the criterion")


def parse_suite(text: str, path: Path) -> Suite:
    name = str(path)
    data, model = parse_model(_SuiteModel, text, name)
    base = path.parent
    datasets = tuple(load_dataset(base / d) for d in model.datasets)
    criteria = tuple(_criterion(c) for c in model.criteria)
    applies: dict[str, str] = {c.name: c.cases for c in model.criteria}
    agent = None
    if model.agent is not None:
        files = tuple(load_tasks(base / f) for f in model.agent.tasks)
        tasks: dict[str, Task] = {}
        for tf in files:
            for task in tf.tasks:
                if task.id in tasks:
                    raise ConfigError(tf.path, "line " + task.source.rsplit(":", 1)[-1],
                                      f"task id {task.id!r} is also in {tasks[task.id].source}",
                                      "give each task its own id")
                tasks[task.id] = task
        agent = AgentSpec(tasks, model.agent.max_steps, model.agent.max_tokens, model.agent.time_budget_s)
        datasets = tuple(tf.dataset() for tf in files)
        criteria = (Criterion(AGENT_CRITERION, "agent"), *criteria)
        applies[AGENT_CRITERION] = "all"
    check_ground_truth(criteria, applies, datasets)
    raw_targets = list(model.targets)
    if model.targets_from:
        extra = validate(_SuiteModel, {**data, "targets": _targets_from(base / model.targets_from, name),
                                       "targets_from": None}, name)
        raw_targets += extra.targets
    if not raw_targets:
        raise ConfigError(name, "targets", "the suite names no targets", "add targets: [{name, url, model}] "
                          "or targets_from: a profile with targets:")
    judge_names = model.judge.strip_names if model.judge else []
    targets = tuple(_target(t, []) for t in raw_targets)
    seen: set[str] = set()
    for i, t in enumerate(targets):
        if t.name in seen:
            raise with_line(ConfigError(name, f"targets[{i}].name", f"duplicate target {t.name!r}",
                                         "give each target its own name"), text)
        seen.add(t.name)
    pricing = load_pricing(base / model.pricing) if model.pricing else None
    if pricing is not None:
        for t in targets:
            pricing.price(t.price, f"target {t.name!r} in {name}")
    decide = None
    if model.decide:
        d = model.decide
        if d.incumbent not in seen:
            raise with_line(ConfigError(name, "decide.incumbent", f"{d.incumbent!r} is not a target",
                                         "one of " + ", ".join(sorted(seen))), text)
        if d.cost_ratio_max is not None and pricing is None:
            raise with_line(ConfigError(name, "decide.cost_ratio_max", "a cost criterion needs prices",
                                         "add pricing: pricing.yaml"), text)
        decide = Decide(d.incumbent, d.quality_ratio_min, d.cost_ratio_max, d.p95_e2e_ratio_max,
                        d.p95_ttft_ratio_max, d.consistency_ratio_min, d.min_cases)
    judge = None
    if model.judge:
        # An unpriced judge is allowed: its calls are counted, its spend shown as unknown.
        judges = tuple(_target(j, []) for j in model.judge.judges)
        judge = JudgeSpec(judges, model.judge.pairwise, model.judge.blind, tuple(judge_names))
    return Suite(
        path=name, name=model.name, description=model.description, datasets=datasets, criteria=criteria,
        accept=_accept(model.accept, criteria, agent is not None),
        applies=applies, repeats=model.repeats, concurrency=model.concurrency, seed=model.seed,
        timeout_s=model.timeout_s, retries=model.retries, max_tokens=model.request.max_tokens,
        temperature=model.request.temperature, system=model.request.system, targets=targets, pricing=pricing,
        decide=decide, judge=judge, probes=model.probes, agent=agent)


def _accept(accept: list[str] | None, criteria: tuple[Criterion, ...], agent: bool) -> tuple[str, ...]:
    """The criteria an acceptable output passes; an agent suite's task success is always one of them (a
    judge approving a trial whose hard checks failed never makes it acceptable)."""
    names = tuple(accept) if accept is not None else tuple(c.name for c in criteria)
    return (AGENT_CRITERION, *(n for n in names if n != AGENT_CRITERION)) if agent else names


def load_suite(path: Path) -> Suite:
    return parse_suite(read_text(path, "suite file"), path)
