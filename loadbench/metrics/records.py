"""The run summary as frozen typed records: what ``summary.json`` (schema ``loadbench.summary/1``) holds.

``Summary.from_json`` reads every ``loadbench.summary/1`` written so far: sections added later
(``stages``, ``stalls``, the SLO's ``objectives``) are optional, so an old folder reads with them empty.
``Summary.to_json`` writes the same keys as before plus the new sections; nothing is ever renamed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SUMMARY_SCHEMA = "loadbench.summary/1"

# Percentile names as stored (``p99_9``) and as people write them (``p99.9``): one list for both.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0), ("p75", 75.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99_9", 99.9),
)
STAT_NAMES: tuple[str, ...] = ("count", "mean", "stdev", "min", *(k for k, _ in PERCENTILES), "max")
# Latency metrics recorded per request (histogram tags, summary keys ``<metric>_ms``).
LATENCY_METRICS: tuple[str, ...] = ("ttft", "ttft_answer", "itl", "tpot", "e2e", "queue", "service_ttft")
STAGE_METRICS: tuple[str, ...] = ("ttft", "itl", "tpot", "e2e")


def stat_key(stat: str) -> str:
    """``p99.9`` -> ``p99_9`` (the stored key); other names unchanged."""
    return stat.replace(".", "_")


def stat_label(stat: str) -> str:
    """``p99_9`` -> ``p99.9`` (the name a person reads and writes)."""
    return stat.replace("_", ".")


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """One latency distribution in milliseconds (None: no sample)."""

    count: int = 0
    mean: float | None = None
    stdev: float | None = None
    min: float | None = None
    p50: float | None = None
    p75: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p99_9: float | None = None
    max: float | None = None

    def stat(self, name: str) -> float | None:
        """A statistic by stored or written name (``p99_9`` or ``p99.9``); None if unknown or empty."""
        key = stat_key(name)
        if key == "count":
            return float(self.count)
        if key not in STAT_NAMES:
            return None
        value = getattr(self, key)
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in STAT_NAMES}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> LatencyStats:
        obj = obj or {}
        return cls(count=int(obj.get("count") or 0),
                   **{k: _opt_float(obj.get(k)) for k in STAT_NAMES if k != "count"})


EMPTY_STATS = LatencyStats()


def _metrics_to_json(metrics: Mapping[str, LatencyStats]) -> dict[str, Any]:
    return {f"{m}_ms": s.to_json() for m, s in metrics.items()}


def _metrics_from_json(obj: Mapping[str, Any] | None) -> dict[str, LatencyStats]:
    return {k.removesuffix("_ms"): LatencyStats.from_json(v) for k, v in (obj or {}).items()}


@dataclass(frozen=True, slots=True)
class SummaryTarget:
    url: str | None = None
    model: str | None = None
    protocol: str | None = None  # None: a run recorded before targets named their protocol (openai)

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "model": self.model, "protocol": self.protocol}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> SummaryTarget:
        obj = obj or {}
        return cls(url=obj.get("url"), model=obj.get("model"), protocol=obj.get("protocol"))


@dataclass(frozen=True, slots=True)
class Load:
    """What load was planned (descriptive; the plan itself is in the manifest)."""

    mode: str = "closed"
    users: int | None = None
    ramp_up_s: float | None = None
    duration_s: float | None = None
    rps: float | None = None
    stages: tuple[Mapping[str, Any], ...] | None = None
    warmup_s: float = 0.0
    cooldown_s: float = 0.0
    max_requests: int | None = None
    workers: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "users": self.users, "ramp_up_s": self.ramp_up_s,
                "duration_s": self.duration_s, "rps": self.rps,
                "stages": None if self.stages is None else [dict(s) for s in self.stages],
                "warmup_s": self.warmup_s, "cooldown_s": self.cooldown_s, "max_requests": self.max_requests,
                "workers": self.workers}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Load:
        obj = obj or {}
        stages = obj.get("stages")
        return cls(mode=str(obj.get("mode") or "closed"), users=_opt_int(obj.get("users")),
                   ramp_up_s=_opt_float(obj.get("ramp_up_s")), duration_s=_opt_float(obj.get("duration_s")),
                   rps=_opt_float(obj.get("rps")), stages=None if stages is None else tuple(stages),
                   warmup_s=float(obj.get("warmup_s") or 0.0), cooldown_s=float(obj.get("cooldown_s") or 0.0),
                   max_requests=_opt_int(obj.get("max_requests")), workers=_opt_int(obj.get("workers")))


@dataclass(frozen=True, slots=True)
class Window:
    start_unix_s: float = 0.0
    end_unix_s: float = 0.0
    measure_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"start_unix_s": self.start_unix_s, "end_unix_s": self.end_unix_s, "measure_s": self.measure_s}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Window:
        obj = obj or {}
        return cls(float(obj.get("start_unix_s") or 0.0), float(obj.get("end_unix_s") or 0.0),
                   float(obj.get("measure_s") or 0.0))


@dataclass(frozen=True, slots=True)
class FailureKind:
    """Failed requests with the same status (0: no HTTP answer) and message."""

    status: int
    message: str
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "count": self.count}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> FailureKind:
        return cls(int(obj.get("status") or 0), str(obj.get("message") or ""), int(obj.get("count") or 0))


@dataclass(frozen=True, slots=True)
class Requests:
    """Requests whose intended start is in the measure window (``excluded``: outside it)."""

    total: int = 0
    ok: int = 0
    failed: int = 0
    dropped: int = 0
    excluded: int = 0
    by_outcome: Mapping[str, int] = field(default_factory=dict)
    error_rate: float = 0.0
    failures: tuple[FailureKind, ...] = ()  # the most frequent (status, message) of failed requests

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "ok": self.ok, "failed": self.failed, "dropped": self.dropped,
                "excluded": self.excluded, "by_outcome": dict(self.by_outcome), "error_rate": self.error_rate,
                "failures": [f.to_json() for f in self.failures]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Requests:
        obj = obj or {}
        return cls(total=int(obj.get("total") or 0), ok=int(obj.get("ok") or 0),
                   failed=int(obj.get("failed") or 0), dropped=int(obj.get("dropped") or 0),
                   excluded=int(obj.get("excluded") or 0),
                   by_outcome={str(k): int(v) for k, v in (obj.get("by_outcome") or {}).items()},
                   error_rate=float(obj.get("error_rate") or 0.0),
                   failures=tuple(FailureKind.from_json(f) for f in obj.get("failures") or ()))


@dataclass(frozen=True, slots=True)
class Throughput:
    requests_per_s: float | None = None
    output_tokens_per_s: float | None = None
    goodput_rps: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"requests_per_s": self.requests_per_s, "output_tokens_per_s": self.output_tokens_per_s,
                "goodput_rps": self.goodput_rps}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Throughput:
        obj = obj or {}
        return cls(_opt_float(obj.get("requests_per_s")), _opt_float(obj.get("output_tokens_per_s")),
                   _opt_float(obj.get("goodput_rps")))


@dataclass(frozen=True, slots=True)
class Tokens:
    source: str | None = None  # "usage" | "estimated" | "mixed" | None (no successful request)
    prompt_mean: float | None = None
    output_mean: float | None = None
    prompt_requested_mean: float | None = None
    output_requested_mean: float | None = None
    per_chunk_mean: float | None = None  # output tokens per content chunk (streamed, from the usage)
    # parts of prompt_mean / output_mean the protocol reports (None: no request reported any)
    cached_mean: float | None = None  # prompt tokens read from the provider's prompt cache
    cache_write_mean: float | None = None  # prompt tokens written to it
    reasoning_mean: float | None = None  # output tokens of thinking

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "prompt_mean": self.prompt_mean, "output_mean": self.output_mean,
                "prompt_requested_mean": self.prompt_requested_mean,
                "output_requested_mean": self.output_requested_mean, "per_chunk_mean": self.per_chunk_mean,
                "cached_mean": self.cached_mean, "cache_write_mean": self.cache_write_mean,
                "reasoning_mean": self.reasoning_mean}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Tokens:
        obj = obj or {}
        return cls(obj.get("source"), _opt_float(obj.get("prompt_mean")), _opt_float(obj.get("output_mean")),
                   _opt_float(obj.get("prompt_requested_mean")), _opt_float(obj.get("output_requested_mean")),
                   _opt_float(obj.get("per_chunk_mean")), _opt_float(obj.get("cached_mean")),
                   _opt_float(obj.get("cache_write_mean")), _opt_float(obj.get("reasoning_mean")))


@dataclass(frozen=True, slots=True)
class Generator:
    """Whether the load generator itself was the bottleneck (docs/generator.md)."""

    saturated: bool = False
    reasons: tuple[str, ...] = ()
    cpu_max: float | None = None
    loop_lag_p99_ms: float | None = None
    schedule_lag_p99_ms: float | None = None
    cpu_s: float | None = None
    cpu_ms_per_request: float | None = None
    target_rps: float | None = None  # open loop: planned arrivals / measure_s
    achieved_rps: float | None = None  # open loop: arrivals / measure_s
    client_delay_ms: float | None = None  # bound of the client-side delay in P99 figures (metrics.client_delay)
    # The bound exceeds the accuracy promise: P99 figures carry a caveat (not valid only with --strict);
    # ``saturated`` is the harder verdict that the generator could not keep up at all.
    beyond_promise: bool = False
    # How the chunks were timed (docs/generator.md): "kernel" (receive stamps) or "user" (the read's
    # return; no stamps on this host or socket); None when no chunk was measured.
    receive_clock: str | None = None
    stamped_share: float | None = None  # of the measured chunks, timed by a kernel receive stamp
    shared_stamp_share: float | None = None  # of them, sharing the previous chunk's stamp (coalesced)
    read_delay_p50_ms: float | None = None  # the client's own read delay: user-space time - kernel time
    read_delay_p99_ms: float | None = None
    user_ttft_p50_ms: float | None = None  # kernel-stamped runs: the same requests' TTFT read in user space
    user_ttft_p99_ms: float | None = None
    send_stamped_share: float | None = None  # of the requests, timed from the kernel's stamp of their last byte
    send_delay_p50_ms: float | None = None  # the client's own send delay: send stamp - start of the send
    send_delay_p99_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"saturated": self.saturated, "reasons": list(self.reasons), "cpu_max": self.cpu_max,
                "loop_lag_p99_ms": self.loop_lag_p99_ms, "schedule_lag_p99_ms": self.schedule_lag_p99_ms,
                "client_delay_ms": self.client_delay_ms, "beyond_promise": self.beyond_promise,
                "cpu_s": self.cpu_s,
                "cpu_ms_per_request": self.cpu_ms_per_request,
                "target_rps": self.target_rps, "achieved_rps": self.achieved_rps,
                "receive_clock": self.receive_clock, "stamped_share": self.stamped_share,
                "shared_stamp_share": self.shared_stamp_share, "read_delay_p50_ms": self.read_delay_p50_ms,
                "read_delay_p99_ms": self.read_delay_p99_ms, "user_ttft_p50_ms": self.user_ttft_p50_ms,
                "user_ttft_p99_ms": self.user_ttft_p99_ms, "send_stamped_share": self.send_stamped_share,
                "send_delay_p50_ms": self.send_delay_p50_ms, "send_delay_p99_ms": self.send_delay_p99_ms}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Generator:
        obj = obj or {}
        return cls(saturated=bool(obj.get("saturated")), reasons=tuple(obj.get("reasons") or ()),
                   beyond_promise=bool(obj.get("beyond_promise")), receive_clock=obj.get("receive_clock"),
                   **{k: _opt_float(obj.get(k)) for k in ("cpu_max", "loop_lag_p99_ms", "schedule_lag_p99_ms",
                                                          "cpu_s", "cpu_ms_per_request", "target_rps",
                                                          "achieved_rps", "client_delay_ms", "stamped_share",
                                                          "shared_stamp_share", "read_delay_p50_ms",
                                                          "read_delay_p99_ms", "user_ttft_p50_ms",
                                                          "user_ttft_p99_ms", "send_stamped_share",
                                                          "send_delay_p50_ms", "send_delay_p99_ms")})


@dataclass(frozen=True, slots=True)
class TurnResult:
    """Multi-turn sessions: the requests of one turn index (1 = every session's first), successful ones' figures."""

    turn: int
    requests: int
    ok: int
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    itl_mean_ms: float | None  # the mean of the requests' mean gaps between content chunks
    prompt_tokens_mean: float | None
    cached_tokens_mean: float | None  # None: the target reported no cache figure

    def to_json(self) -> dict[str, Any]:
        return {"turn": self.turn, "requests": self.requests, "ok": self.ok,
                "ttft_ms": {"p50": self.ttft_p50_ms, "p99": self.ttft_p99_ms}, "itl_mean_ms": self.itl_mean_ms,
                "prompt_tokens_mean": self.prompt_tokens_mean, "cached_tokens_mean": self.cached_tokens_mean}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TurnResult:
        ttft = obj.get("ttft_ms") or {}
        return cls(int(obj["turn"]), int(obj["requests"]), int(obj["ok"]), _opt_float(ttft.get("p50")),
                   _opt_float(ttft.get("p99")), _opt_float(obj.get("itl_mean_ms")),
                   _opt_float(obj.get("prompt_tokens_mean")), _opt_float(obj.get("cached_tokens_mean")))


@dataclass(frozen=True, slots=True)
class SessionStats:
    """Multi-turn sessions of the measure window (by their first turn's intended start)."""

    started: int
    completed: int  # every planned turn answered
    turns_completed_mean: float | None
    duration_mean_s: float | None  # first turn's intended start to the last answered turn's end
    turns: tuple[TurnResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {"started": self.started, "completed": self.completed,
                "turns_completed_mean": self.turns_completed_mean, "duration_mean_s": self.duration_mean_s,
                "turns": [t.to_json() for t in self.turns]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> SessionStats | None:
        if not obj:
            return None
        return cls(int(obj["started"]), int(obj["completed"]), _opt_float(obj.get("turns_completed_mean")),
                   _opt_float(obj.get("duration_mean_s")),
                   tuple(TurnResult.from_json(t) for t in obj.get("turns") or ()))


@dataclass(frozen=True, slots=True)
class Replay:
    """How faithfully a trace was replayed: each send's lag behind its scheduled time (the ``queue``
    of every sent request, all phases), and sends against the schedule (docs/replay.md)."""

    trace: str  # the file's name
    format: str
    speed: float
    sample: float
    scheduled: int  # sends the trace asked for (after sampling and max_requests)
    sent: int
    dropped: int
    send_lag_p50_ms: float | None
    send_lag_p99_ms: float | None
    send_lag_max_ms: float | None

    def to_json(self) -> dict[str, Any]:
        return {"trace": self.trace, "format": self.format, "speed": self.speed, "sample": self.sample,
                "scheduled": self.scheduled, "sent": self.sent, "dropped": self.dropped,
                "send_lag_ms": {"p50": self.send_lag_p50_ms, "p99": self.send_lag_p99_ms, "max": self.send_lag_max_ms}}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Replay | None:
        if not obj:
            return None
        lag = obj.get("send_lag_ms") or {}
        return cls(str(obj["trace"]), str(obj["format"]), float(obj["speed"]), float(obj["sample"]),
                   int(obj["scheduled"]), int(obj["sent"]), int(obj["dropped"]), _opt_float(lag.get("p50")),
                   _opt_float(lag.get("p99")), _opt_float(lag.get("max")))


@dataclass(frozen=True, slots=True)
class Stalls:
    """Stream stalls: gaps between content chunks longer than ``limit_ms`` (docs/results-format.md)."""

    limit_ms: float
    stalls: int
    streams: int  # successful requests whose stalls were counted
    streams_stalled: int  # of those, with at least one stall
    output_tokens: int

    @property
    def per_1k_tokens(self) -> float | None:
        return round(1000.0 * self.stalls / self.output_tokens, 4) if self.output_tokens else None

    @property
    def stalled_share(self) -> float | None:
        return round(self.streams_stalled / self.streams, 6) if self.streams else None

    def to_json(self) -> dict[str, Any]:
        return {"limit_ms": self.limit_ms, "stalls": self.stalls, "streams": self.streams,
                "streams_stalled": self.streams_stalled, "output_tokens": self.output_tokens,
                "per_1k_tokens": self.per_1k_tokens, "stalled_share": self.stalled_share}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Stalls | None:
        if not obj:
            return None
        return cls(float(obj["limit_ms"]), int(obj["stalls"]), int(obj["streams"]), int(obj["streams_stalled"]),
                   int(obj["output_tokens"]))


@dataclass(frozen=True, slots=True)
class Objective:
    """One SLO objective and how the run did against it (``stat`` None for run figures)."""

    metric: str  # "ttft", ..., or a run figure: "error_rate", "stalls_per_1k_tokens", "stalled_share"
    stat: str | None
    limit: float
    value: float | None
    passed: bool

    @property
    def unit(self) -> str:
        return "ms" if self.stat is not None else ""

    @property
    def label(self) -> str:
        """As people write it: ``ttft p95 <= 200 ms``, ``error_rate <= 0.01``."""
        lim = f"{self.limit:g}"
        if self.stat is None:
            return f"{self.metric} <= {lim}"
        return f"{self.metric} {stat_label(self.stat)} <= {lim} ms"

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "stat": self.stat, "limit": self.limit, "value": self.value,
                "passed": self.passed}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Objective:
        return cls(str(obj["metric"]), obj.get("stat"), float(obj["limit"]), _opt_float(obj.get("value")),
                   bool(obj["passed"]))


@dataclass(frozen=True, slots=True)
class SloResult:
    met: bool
    reasons: tuple[str, ...] = ()
    limits_ms: Mapping[str, float] = field(default_factory=dict)  # per-request (goodput) limits
    objectives: tuple[Objective, ...] = ()  # empty in folders written before objectives were stored

    def to_json(self) -> dict[str, Any]:
        return {"met": self.met, "reasons": list(self.reasons), "limits_ms": dict(self.limits_ms),
                "objectives": [o.to_json() for o in self.objectives]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> SloResult | None:
        if not obj:
            return None
        return cls(met=bool(obj.get("met")), reasons=tuple(obj.get("reasons") or ()),
                   limits_ms={str(k): float(v) for k, v in (obj.get("limits_ms") or {}).items()},
                   objectives=tuple(Objective.from_json(o) for o in obj.get("objectives") or ()))


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Latencies of the successful requests with one value of a dimension (type, target, cache)."""

    requests: int
    metrics: Mapping[str, LatencyStats]
    stalls: Stalls | None = None

    def latency(self, metric: str) -> LatencyStats:
        return self.metrics.get(metric, EMPTY_STATS)

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "metrics": _metrics_to_json(self.metrics),
                "stalls": None if self.stalls is None else self.stalls.to_json()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Breakdown:
        return cls(int(obj.get("requests") or 0), _metrics_from_json(obj.get("metrics")),
                   Stalls.from_json(obj.get("stalls")))


@dataclass(frozen=True, slots=True)
class StageResult:
    """The requests whose intended start falls in one stage of the plan (all phases; ``phase`` says
    which: a warm-up stage is shown but never enters the headline figures)."""

    label: str
    start_s: float
    end_s: float
    phase: str  # "warmup", "measure", "cooldown" or "mixed"
    requests: Requests
    throughput: Throughput
    metrics: Mapping[str, LatencyStats]
    stalls: Stalls | None = None
    slo: SloResult | None = None

    def latency(self, metric: str) -> LatencyStats:
        return self.metrics.get(metric, EMPTY_STATS)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "start_s": self.start_s, "end_s": self.end_s, "phase": self.phase,
                "requests": self.requests.to_json(), "throughput": self.throughput.to_json(),
                "metrics": _metrics_to_json(self.metrics),
                "stalls": None if self.stalls is None else self.stalls.to_json(),
                "slo": None if self.slo is None else self.slo.to_json()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> StageResult:
        return cls(str(obj["label"]), float(obj["start_s"]), float(obj["end_s"]), str(obj.get("phase") or ""),
                   Requests.from_json(obj.get("requests")), Throughput.from_json(obj.get("throughput")),
                   _metrics_from_json(obj.get("metrics")), Stalls.from_json(obj.get("stalls")),
                   SloResult.from_json(obj.get("slo")))


@dataclass(frozen=True, slots=True)
class Summary:
    """Everything ``summary.json`` holds. ``metrics`` is keyed by metric name (``ttft``), stored as
    ``ttft_ms``."""

    run_id: str | None
    name: str | None
    target: SummaryTarget
    load: Load
    window: Window
    requests: Requests
    throughput: Throughput
    tokens: Tokens
    metrics: Mapping[str, LatencyStats]
    generator: Generator
    slo: SloResult | None = None
    breakdowns: Mapping[str, Mapping[str, Breakdown]] = field(default_factory=dict)
    stages: tuple[StageResult, ...] = ()
    stalls: Stalls | None = None
    warnings: tuple[str, ...] = ()
    interrupted: bool = False
    replay: Replay | None = None  # a trace replay's fidelity
    sessions: SessionStats | None = None  # multi-turn sessions, by turn index

    def latency(self, metric: str) -> LatencyStats:
        return self.metrics.get(metric, EMPTY_STATS)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SUMMARY_SCHEMA, "run_id": self.run_id, "name": self.name,
            "target": self.target.to_json(), "load": self.load.to_json(), "window": self.window.to_json(),
            "requests": self.requests.to_json(), "throughput": self.throughput.to_json(),
            "slo": None if self.slo is None else self.slo.to_json(), "tokens": self.tokens.to_json(),
            "metrics": _metrics_to_json(self.metrics),
            "breakdowns": {d: {v: b.to_json() for v, b in vals.items()} for d, vals in self.breakdowns.items()},
            "generator": self.generator.to_json(), "stages": [s.to_json() for s in self.stages],
            "stalls": None if self.stalls is None else self.stalls.to_json(),
            "warnings": list(self.warnings), "interrupted": self.interrupted,
            "replay": None if self.replay is None else self.replay.to_json(),
            "sessions": None if self.sessions is None else self.sessions.to_json(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Summary:
        """Raises ValueError on another schema or a missing section (callers name the file)."""
        schema = obj.get("schema")
        if schema != SUMMARY_SCHEMA:
            raise ValueError(f"summary schema {schema!r} is not supported (this loadbench reads "
                             f"{SUMMARY_SCHEMA!r}); re-run or rebuild the summary")
        for key in ("metrics", "requests", "load"):
            if not isinstance(obj.get(key), dict):
                raise ValueError(f"summary has no {key!r} object")
        return cls(
            run_id=obj.get("run_id"), name=obj.get("name"), target=SummaryTarget.from_json(obj.get("target")),
            load=Load.from_json(obj.get("load")), window=Window.from_json(obj.get("window")),
            requests=Requests.from_json(obj.get("requests")), throughput=Throughput.from_json(obj.get("throughput")),
            tokens=Tokens.from_json(obj.get("tokens")), metrics=_metrics_from_json(obj.get("metrics")),
            generator=Generator.from_json(obj.get("generator")), slo=SloResult.from_json(obj.get("slo")),
            breakdowns={str(d): {str(v): Breakdown.from_json(b) for v, b in (vals or {}).items()}
                        for d, vals in (obj.get("breakdowns") or {}).items()},
            stages=tuple(StageResult.from_json(s) for s in obj.get("stages") or ()),
            stalls=Stalls.from_json(obj.get("stalls")), warnings=tuple(obj.get("warnings") or ()),
            interrupted=bool(obj.get("interrupted")), replay=Replay.from_json(obj.get("replay")),
            sessions=SessionStats.from_json(obj.get("sessions")),
        )
