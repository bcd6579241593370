"""Profile: *how much* load, for how long, and what counts as good.

Exactly one load mode applies:
- closed loop, flat:    ``users``, ``ramp_up_s``, ``duration_s`` (default 20 s)
- closed loop, staged:  ``stages: [{duration_s, users, ramp_up_s}]`` (a stage's duration includes its ramp)
- peak multiples:       ``peak: {users: N}`` (closed) or ``peak: {rps: R}`` (open), see ``Peak``
- open loop:            ``arrival: {kind, rps | rps_start/rps_end + ramp_up_s, burstiness}``
- trace replay:         ``arrival: {trace: FILE, speed, sample, format, block_tokens}`` (open loop on the
                        trace's own timestamps, see ``loadbench.workload.trace``)
- sweep:                ``sweep: {variable: users|rps, start, step, max, hold_s}``, one step after another

``duration_s`` with stages/peak/sweep is a hard cap that cuts the plan short. Without it a flat
load runs 20 s, or up to 3600 s when bounded by ``max_requests``. ``warmup_s`` and ``cooldown_s``
are carved out of the run: requests whose intended start falls in them are excluded from the summary.

The plan arithmetic (stages, rate segments, totals, phases) lives in ``loadbench.plan.load``;
``Profile.load_plan()`` builds it and ``Profile.with_load(...)`` derives sweep steps, interleave rounds
and per-target profiles. ``abort_on`` ends a run that only produces errors; target header values may
be ``{env: NAME}`` and credential-like ones are redacted in every file (``dump_for_record``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from loadbench.config.validation import StrictModel, invalid, validate
from loadbench.errors import ConfigError

MAX_DURATION_S = 7 * 24 * 3600.0  # a run is bounded in time; a week is beyond any load test

if TYPE_CHECKING:
    from loadbench.plan.load import LoadPlan


class Stage(StrictModel):
    duration_s: float = Field(gt=0)
    users: int = Field(ge=0)
    ramp_up_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Stage:
        if self.ramp_up_s > self.duration_s:
            raise invalid(
                f"ramp_up_s {self.ramp_up_s} is longer than duration_s {self.duration_s}",
                "a stage's duration includes its ramp; make ramp_up_s <= duration_s",
                field="ramp_up_s",
            )
        return self


class Peak(StrictModel):
    """Peak-multiple test: warm up (``warmup_fraction`` x peak for the profile's ``warmup_s``), ramp to
    peak and hold, ramp to ``multiplier`` x peak and hold, ramp back to peak and hold (recovery)."""

    users: int | None = Field(default=None, ge=1)
    rps: float | None = Field(default=None, gt=0)
    multiplier: float = Field(default=2.0, gt=1)
    warmup_fraction: float = Field(default=0.5, gt=0, le=1)
    ramp_s: float = Field(default=5.0, ge=0)
    hold_s: float = Field(default=30.0, gt=0)
    surge_hold_s: float | None = Field(default=None, gt=0)  # default: hold_s
    recovery_s: float | None = Field(default=None, gt=0)  # default: hold_s

    @model_validator(mode="after")
    def _check(self) -> Peak:
        if (self.users is None) == (self.rps is None):
            raise invalid(
                "needs exactly one of users or rps", "write `peak: {users: 10}` or `peak: {rps: 5}`"
            )
        return self


class Arrival(StrictModel):
    """Open-loop arrivals. ``gamma`` inter-arrival times have shape 1/burstiness and the same mean
    as poisson: burstiness 1 is poisson, > 1 is burstier (clumps and gaps), < 1 is more regular."""

    kind: Literal["constant", "poisson", "gamma"] = "poisson"
    rps: float | None = Field(default=None, gt=0)
    burstiness: float = Field(default=1.0, gt=0)
    rps_start: float | None = Field(default=None, ge=0)
    rps_end: float | None = Field(default=None, gt=0)
    ramp_up_s: float = Field(default=0.0, ge=0)
    # trace replay: requests on the trace's timestamps divided by speed, each kept with probability sample
    trace: str | None = None
    format: Literal["auto", "mooncake", "azure", "gateway"] = "auto"
    speed: float = Field(default=1.0, gt=0, le=10_000)
    sample: float = Field(default=1.0, gt=0, le=1)
    block_tokens: int = Field(default=512, ge=1)  # tokens per hash_ids block (Mooncake: 512)
    sample_seed: int = Field(default=0, ge=0)  # which requests sample keeps
    # Filled from the trace file when the profile is read (what the load plan needs); a value written here
    # is replaced.
    trace_requests: int | None = None  # sends after sampling
    trace_span_s: float | None = None  # from the first send to the last, after speed

    @model_validator(mode="before")
    @classmethod
    def _read_trace(cls, data: Any) -> Any:
        """Read and check the trace now, before any request, and keep the facts the plan needs."""
        if not isinstance(data, dict) or not isinstance(data.get("trace"), str):
            return data
        from loadbench.config.trace import load_trace, schedule, trace_location

        trace = load_trace(data["trace"], str(data.get("format", "auto")))
        speed, sample, seed = data.get("speed", 1.0), data.get("sample", 1.0), data.get("sample_seed", 0)
        if not all(isinstance(v, int | float) and v > 0 for v in (speed, sample)) or not isinstance(seed, int):
            return data  # the field checks below say what is wrong
        last = count = 0
        for a in schedule(trace, speed=float(speed), sample=float(sample), seed=seed):
            last, count = a.offset_ns, count + 1
        # absolute, so the workers (and a later run from another directory) read the same file
        return {**data, "trace": trace_location(data["trace"]), "format": trace.format, "trace_requests": count,
                "trace_span_s": last / 1e9}

    @model_validator(mode="after")
    def _check(self) -> Arrival:
        if self.trace is not None:
            rates = [n for n in ("rps", "rps_start", "rps_end") if getattr(self, n) is not None]
            if rates or self.ramp_up_s:
                raise invalid("a trace sets its own arrival times", f"drop {(rates or ['ramp_up_s'])[0]} "
                              "(use speed: to replay faster)", (rates or ["ramp_up_s"])[0])
            if self.kind != "poisson" or self.burstiness != 1.0:
                raise invalid("a trace sets its own arrival times", "drop kind/burstiness", "kind")
            return self
        if self.rps is not None and self.rps_end is not None:
            raise invalid(
                "rps and rps_end both set", "use rps (constant) or rps_start/rps_end (ramp)", "rps_end"
            )
        if self.rps_start is not None and self.ramp_up_s == 0:
            raise invalid("rps_start needs a ramp", "set ramp_up_s > 0", "ramp_up_s")
        if self.kind != "gamma" and self.burstiness != 1.0:
            raise invalid(
                f"burstiness applies to kind 'gamma', not {self.kind!r}", "use kind: gamma", "burstiness"
            )
        return self

    @property
    def target_rps(self) -> float | None:
        return self.rps_end if self.rps_end is not None else self.rps


class Sweep(StrictModel):
    variable: Literal["users", "rps"]
    start: float = Field(gt=0)
    step: float = Field(gt=0)
    max: float = Field(gt=0)
    hold_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _check(self) -> Sweep:
        if self.max < self.start:
            raise invalid(f"max {self.max} < start {self.start}", "max must be >= start", "max")
        if self.variable == "users":
            for name in ("start", "step", "max"):
                if getattr(self, name) != int(getattr(self, name)):
                    raise invalid("users must be whole numbers", "use integers for a users sweep", name)
        return self

    def values(self) -> list[float]:
        """start, start+step, ... <= max (computed by index, so no float drift)."""
        from loadbench.plan.load import sweep_values

        return sweep_values(self.start, self.step, self.max)


_SLO_KEY = re.compile(r"^(p\d{1,2}(\.\d+)?|mean|max)$")


def _check_slo_metric(value: dict[str, float] | None) -> dict[str, float] | None:
    for key, limit in (value or {}).items():
        if not _SLO_KEY.match(key):
            raise invalid(f"unknown statistic {key!r}", "use p50, p90, p95, p99, p99.9, mean or max", key)
        if limit <= 0:
            raise invalid(f"{key}: {limit} must be > 0", "limits are positive milliseconds", key)
    return value


class Slo(StrictModel):
    """Per-metric limits in ms by statistic, e.g. ``ttft_ms: {p95: 500}``; ``error_rate`` in [0, 1]."""

    ttft_ms: dict[str, float] | None = None
    itl_ms: dict[str, float] | None = None
    tpot_ms: dict[str, float] | None = None
    e2e_ms: dict[str, float] | None = None
    error_rate: float | None = Field(default=None, ge=0, le=1)
    stalls_per_1k_tokens: float | None = Field(default=None, ge=0)  # stalls per 1,000 output tokens
    stalled_share: float | None = Field(default=None, ge=0, le=1)  # share of streams with a stall

    _validate_metrics = field_validator("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms")(_check_slo_metric)

    def metrics(self) -> dict[str, dict[str, float]]:
        out = {"ttft_ms": self.ttft_ms, "itl_ms": self.itl_ms, "tpot_ms": self.tpot_ms, "e2e_ms": self.e2e_ms}
        return {k: v for k, v in out.items() if v}


class AbortOn(StrictModel):
    """End a run that is only producing errors (like k6's abortOnFail): once ``after_requests`` have
    finished, stop when the share of failed ones reaches ``error_rate``. The run exits 4."""

    error_rate: float = Field(gt=0, le=1)
    after_requests: int = Field(default=100, ge=1)


class StopOnSaturation(StrictModel):
    """Stop a run (and a sweep) once the target is over-saturated: in-flight requests and TTFT rising
    together beyond their noise (``loadbench.metrics.saturation``; GuideLLM's defaults)."""

    min_s: float = Field(default=30.0, ge=0)
    window_s: float = Field(default=120.0, gt=0)
    moe: float = Field(default=2.0, gt=0)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    min_points: int = Field(default=5, ge=3)
    min_ttft_ms: float = Field(default=2500.0, ge=0)


class FromEnv(StrictModel):
    """A header value read from an environment variable when the run starts (``{env: NAME}``)."""

    env: str = Field(min_length=1)


REDACTED = "<redacted>"
_CREDENTIAL = re.compile(r"^(authorization|proxy-authorization|api-key|x-api-key|cookie)$|token|secret|key",
                         re.IGNORECASE)


def is_credential_header(name: str) -> bool:
    """Header names whose values are credentials: never written to a file."""
    return bool(_CREDENTIAL.search(name))


class TargetOptions(StrictModel):
    include_usage: bool = True  # some providers reject stream_options; then tokens are estimated
    stream: bool | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    headers: dict[str, str | FromEnv] = Field(default_factory=dict)


class TargetConfig(StrictModel):
    name: str = Field(min_length=1)
    url: str
    model: str | None = None
    api_key_env: str | None = None  # the NAME of an environment variable, never the key itself
    protocol: str = "openai"  # the wire protocol the target speaks (a registered dialect)
    region: str | None = None  # bedrock: the AWS region (else AWS_REGION)
    auth: Literal["key", "bearer", "aws", "none"] | None = None  # None: the protocol's own (see credentials)
    options: TargetOptions = Field(default_factory=TargetOptions)

    @field_validator("protocol")
    @classmethod
    def _check_protocol(cls, protocol: str) -> str:
        from loadbench.protocol.registry import names

        if protocol not in names():
            raise invalid(f"unknown protocol {protocol!r}", f"known protocols: {', '.join(names())}")
        return protocol

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise invalid(
                f"{url!r} is not an http(s) URL", "write the base URL, e.g. http://127.0.0.1:8000/v1"
            )
        return url


_OVERRIDABLE = (
    "users", "ramp_up_s", "duration_s", "max_requests", "stream", "model", "seed", "warmup_s", "cooldown_s",
)


class Profile(StrictModel):
    name: str = "default"
    description: str = ""
    # closed loop
    users: int = Field(default=20, ge=1)
    ramp_up_s: float = Field(default=2.0, ge=0)
    duration_s: float | None = Field(default=None, gt=0, le=MAX_DURATION_S)
    max_requests: int | None = Field(default=None, ge=1)
    stages: list[Stage] | None = None
    peak: Peak | None = None
    # open loop
    arrival: Arrival | None = None
    max_in_flight: int = Field(default=512, ge=1)
    late: Literal["drop", "send"] = "drop"
    # phases
    warmup_s: float = Field(default=0.0, ge=0)
    cooldown_s: float = Field(default=0.0, ge=0)
    # requests
    seed: int = Field(default=0, ge=0)
    stream: bool = True
    include_usage: bool = True
    timeout_s: float = Field(default=600.0, gt=0)
    interval_s: float = Field(default=2.0, gt=0)
    model: str | None = None
    # judging and comparing
    sweep: Sweep | None = None
    slo: Slo | None = None
    abort_on: AbortOn | None = None
    stop_on_saturation: StopOnSaturation | None = None
    stall_ms: float = Field(default=250.0, gt=0)  # a gap between content chunks longer than this is a stall
    thresholds: list[str] = Field(default_factory=list)
    targets: list[TargetConfig] = Field(default_factory=list)
    interleave: bool = False

    @model_validator(mode="after")
    def _check(self) -> Profile:
        shapes = [n for n in ("stages", "peak", "arrival", "sweep") if getattr(self, n) is not None]
        if len(shapes) > 1 and not (
            set(shapes) == {"arrival", "sweep"} or set(shapes) == {"arrival", "peak"}
        ):
            raise invalid(
                f"{' and '.join(shapes)} cannot be combined",
                "pick one load mode (arrival may only be combined with a peak or sweep in rps)",
                shapes[1],
            )
        if self.stages is not None and not self.stages:
            raise invalid("stages is empty", "list at least one stage or remove `stages:`", "stages")
        open_driver = (self.peak is not None and self.peak.rps is not None) or (
            self.sweep is not None and self.sweep.variable == "rps"
        )
        if self.arrival is not None:
            if open_driver and self.arrival.target_rps is not None:
                raise invalid(
                    "arrival rates are set by peak/sweep",
                    "keep only kind/burstiness under arrival",
                    "arrival",
                )
            if open_driver and self.arrival.trace is not None:
                raise invalid("a trace cannot be combined with peak or sweep", "drop one of them", "arrival")
            if not open_driver and self.arrival.target_rps is None and self.arrival.trace is None:
                raise invalid(
                    "arrival needs a rate", "add `rps:` (or rps_start/rps_end with ramp_up_s)", "arrival"
                )
        if self.peak is not None and self.peak.users is not None and self.arrival is not None:
            raise invalid("peak.users is closed-loop but arrival is set", "use peak.rps with arrival", "peak")
        if any(not t.strip() for t in self.thresholds):
            raise invalid("empty threshold", 'write thresholds like "ttft.p95 > 500ms"', "thresholds")
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise invalid(f"duplicate target names in {names}", "give each target a unique name", "targets")
        total = self.total_duration_s
        if self.warmup_s + self.cooldown_s >= total:
            raise invalid(
                f"warmup_s + cooldown_s = {self.warmup_s + self.cooldown_s} leaves no measured time"
                f" in a {total:g} s run",
                "shorten warmup_s/cooldown_s or lengthen the run",
                "warmup_s",
            )
        return self

    # ---- the resolved plan (built by loadbench.plan.load) ----

    def load_plan(self) -> LoadPlan:
        from loadbench.plan.load import LoadPlan

        return LoadPlan.from_profile(self)

    @property
    def mode(self) -> Literal["closed", "open"]:
        return self.load_plan().mode

    @property
    def total_duration_s(self) -> float:
        return self.load_plan().total_s

    def with_load(
        self,
        *,
        users: int | None = None,
        rps: float | None = None,
        duration_s: float | None = None,
        stream: bool | None = None,
        timeout_s: float | None = None,
        source: str = "derived profile",
    ) -> Profile:
        """A validated copy with another load: ``users`` (a flat closed loop) or ``rps`` (one open-loop
        rate, keeping the arrival kind and burstiness) replaces any stages/peak/sweep plan; the other
        arguments replace the field of that name where given. Sweep steps, interleave rounds and
        per-target runs are derived this way."""
        data = self.model_dump(mode="python")
        if users is not None or rps is not None:
            data.update(stages=None, peak=None, sweep=None, max_requests=None, targets=[])
        if users is not None:
            data.update(users=users, arrival=None)
        if rps is not None:
            arrival = {k: v for k, v in (data.get("arrival") or {"kind": "poisson"}).items()
                       if k not in ("rps_start", "rps_end", "ramp_up_s")}
            data["arrival"] = {**arrival, "rps": rps}
        for name, value in (("duration_s", duration_s), ("stream", stream), ("timeout_s", timeout_s)):
            if value is not None:
                data[name] = value
        return validate(Profile, data, source)

    def with_arrival(self, arrival: dict[str, Any], source: str) -> Profile:
        """A validated copy whose load is this open-loop ``arrival`` block (``loadbench replay``'s trace):
        any stages/peak/sweep plan and closed-loop users give way to it."""
        data = self.model_dump(mode="python")
        data.update(stages=None, peak=None, sweep=None, targets=[], arrival=arrival)
        return validate(Profile, data, source)

    def dump_for_record(self) -> dict[str, Any]:
        """The profile as JSON for files (manifest.json, plan.json): credential-like header values
        replaced by ``<redacted>``; a value from the environment stays ``{env: NAME}``."""
        data = self.model_dump(mode="json")
        for target in data.get("targets") or []:
            headers = target.get("options", {}).get("headers") or {}
            for name, value in headers.items():
                if isinstance(value, str) and is_credential_header(name):
                    headers[name] = REDACTED
        return data

    def apply_overrides(self, **flags: Any) -> Profile:
        """A copy with CLI flags applied where not None (validated again; errors name the flag)."""
        unknown = sorted(set(flags) - set(_OVERRIDABLE))
        if unknown:
            raise ConfigError(
                "command line", unknown[0], "not a profile override", f"overridable: {_OVERRIDABLE}"
            )
        updates = {k: v for k, v in flags.items() if v is not None}
        if not updates:
            return self
        plan = "arrival" if self.mode == "open" else "stages/peak/sweep"
        if "users" in updates and (self.mode == "open" or self.stages or self.peak or self.sweep):
            raise ConfigError(
                "command line",
                "users",
                f"--users conflicts with the profile's {plan} plan",
                "drop --users or use a flat profile",
            )
        data = self.model_dump(mode="python")
        data.update(updates)
        return validate(Profile, data, "command line (overrides)")
