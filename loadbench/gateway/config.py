"""Gateway config: YAML validated by pydantic at the edge, compiled into slotted runtime specs.

Pydantic models live only here; the request path sees the plain dataclasses from ``compile``.
Validation goes through the same translator and strict base model as profiles and scenarios
(``loadbench.config.validation``), and the file through the same strict YAML reader
(``loadbench.config.source``): every problem becomes ``ConfigError(path, field, problem, fix)``
naming the field as ``virtual_models[0].targets[1].weight``, with a did-you-mean for unknown keys,
so ``loadbench gateway`` exits 2 with a usable message. The environment (upstream and client keys)
comes from ``loadbench.config.source.environment``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, StrictBool

from loadbench.cache.config import CacheConfig, OpenAIEmbedderConfig, load_cache_config
from loadbench.config.credentials import aws_credentials
from loadbench.config.source import environment, read_yaml
from loadbench.config.validation import StrictModel, validate
from loadbench.errors import ConfigError, InputError
from loadbench.gateway.abconfig import (
    AdminModel,
    CostRoutingModel,
    CostRoutingSpec,
    ExperimentModel,
    ExperimentSpec,
    RequestLogModel,
    RequestLogSpec,
    ShadowModel,
    ShadowSpec,
    compile_cost_routing,
    compile_experiment,
    compile_request_log,
    compile_shadow,
)
from loadbench.protocol import registry
from loadbench.protocol.aws import AwsCredentials
from loadbench.protocol.bedrock import check_region
from loadbench.protocol.gemini import check_model

DEFAULT_FAILURE_CODES = (429, 500, 502, 503, 504)
DEFAULT_RETRY_CODES = (429, 500, 502, 503)
# TrueFoundry's default plus 504: a gateway timeout is as good a reason to move on as a 503.
DEFAULT_FALLBACK_CODES = (401, 403, 404, 429, 500, 502, 503, 504)


class TimeoutsModel(StrictModel):
    connect_s: PositiveFloat = 2.0
    first_token_s: PositiveFloat = 30.0  # request sent -> first body byte
    idle_s: PositiveFloat = 30.0  # longest gap between two body reads after the first
    total_s: PositiveFloat = 600.0


class FailureToleranceModel(StrictModel):
    allowed_failures_per_minute: int = Field(default=3, ge=0)
    cooldown_period_s: PositiveFloat = 300.0
    failure_status_codes: list[int] = Field(default_factory=lambda: list(DEFAULT_FAILURE_CODES))


class TargetModel(StrictModel):
    name: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")
    model: str = Field(min_length=1)
    api_key_env: str | None = None
    protocol: str = "openai"  # the registered dialect the target speaks (see "Target protocols" below)
    region: str | None = None  # bedrock: the AWS region requests are signed for
    aws_profile: str | None = None  # bedrock: the profile of the standard AWS chain (default: its own choice)
    max_connections: PositiveInt = 512
    timeouts: TimeoutsModel = TimeoutsModel()
    failure_tolerance: FailureToleranceModel = FailureToleranceModel()


class SlaCutoffModel(StrictModel):
    time_per_output_token_ms: PositiveFloat


class RouteTargetModel(StrictModel):
    target: str = Field(min_length=1)
    weight: float = Field(default=1.0, ge=0)
    priority: int = Field(default=0, ge=0)
    metadata_match: dict[str, str] = Field(default_factory=dict)
    override_params: dict[str, Any] = Field(default_factory=dict)
    sla_cutoff: SlaCutoffModel | None = None
    fallback_candidate: bool = True


class RetryModel(StrictModel):
    attempts: int = Field(default=0, ge=0, le=10)  # extra attempts on the same target
    delay_ms: float = Field(default=100.0, ge=0)
    on_status_codes: list[int] = Field(default_factory=lambda: list(DEFAULT_RETRY_CODES))


class VirtualModelModel(StrictModel):
    name: str = Field(min_length=1)
    routing: str = "weight"  # a strategy of STRATEGIES or a registered route policy (policies.py)
    targets: list[RouteTargetModel] = Field(min_length=1)
    retry: RetryModel = RetryModel()
    fallback_status_codes: list[int] = Field(default_factory=lambda: list(DEFAULT_FALLBACK_CODES))
    # a mapping overrides fields of the gateway's cache block (or turns the cache on for this model
    # alone); false turns it off for this model; validated by loadbench.cache.config
    cache: dict[str, Any] | StrictBool | None = None
    experiment: ExperimentModel | None = None  # docs/ab.md
    shadow: ShadowModel | None = None  # docs/ab.md
    cost_routing: CostRoutingModel | None = None  # routing: cost (docs/ab.md)


class LatencyRoutingModel(StrictModel):
    window_s: PositiveFloat = 1200.0
    window_requests: PositiveInt = 100
    band: float = Field(default=1.2, ge=1.0)
    min_samples: PositiveInt = 3
    explore_fraction: float = Field(default=0.05, ge=0, le=0.5)


class SlaModel(StrictModel):
    window_s: PositiveFloat = 180.0
    min_samples: PositiveInt = 3
    max_samples: PositiveInt = 10


class AuthModel(StrictModel):
    api_keys_env: str | None = None
    api_keys_file: str | None = None
    # cache namespace -> the environment variable holding the keys (comma-separated) that may use it
    # through X-Loadbench-Cache-Namespace; when set, the header of any other key is ignored
    namespaces: dict[str, str] = Field(default_factory=dict)


class LimitsModel(StrictModel):
    max_body_bytes: PositiveInt = 4 * 1024 * 1024  # a client's request body
    # a non-streamed upstream answer held to be relayed (and an error body: 64 KiB at most)
    max_upstream_body_bytes: PositiveInt = 32 * 1024 * 1024
    max_event_bytes: PositiveInt = 1024 * 1024  # one upstream SSE event (and what precedes the first token)
    body_timeout_s: PositiveFloat = 30.0  # reading a client's request body
    # a connection that has sent no complete request head for this long (idle before or between
    # requests, or a slow header) is closed
    idle_timeout_s: PositiveFloat = 15.0
    # a streaming client that takes longer than this to accept one write is cut off (its slowness is
    # its own: nothing is charged to the target)
    client_write_timeout_s: PositiveFloat = 30.0
    # open client connections per worker; beyond it new ones get a 503 and are closed. Default:
    # half the process's descriptor limit (the other half is for upstream pools)
    max_connections: PositiveInt | None = None


class RateLimitModel(StrictModel):
    requests_per_minute: PositiveInt | None = None
    tokens_per_minute: PositiveInt | None = None  # prompt + completion tokens, charged once answered


class KeyRateLimitModel(RateLimitModel):
    api_keys_env: str = Field(min_length=1)  # the keys (comma-separated) these limits apply to


class RateLimitsModel(StrictModel):
    """Per-key limits (docs/gateway.md, "Rate limits"): each key has its own buckets; a key listed under
    ``keys`` has that entry's limits instead of ``per_key``'s."""

    per_key: RateLimitModel = RateLimitModel()
    keys: list[KeyRateLimitModel] = Field(default_factory=list)


class StateModel(StrictModel):
    """Where the state the gateway's processes share lives (docs/deploy.md): ``local`` (the request log's
    SQLite file, one host) or ``redis`` (N replicas on several hosts)."""

    backend: Literal["local", "redis"] = "local"
    url_env: str | None = Field(default=None, min_length=1)  # the variable holding redis://... (never the URL)
    prefix: str = Field(default="loadbench:", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    # every Redis call gives up after this long: a slow Redis costs the poller's thread this, never a request
    timeout_ms: float = Field(default=250.0, ge=10, le=5000)


class GatewayModel(StrictModel):
    targets: list[TargetModel] = Field(min_length=1)
    virtual_models: list[VirtualModelModel] = Field(min_length=1)
    latency_routing: LatencyRoutingModel = LatencyRoutingModel()
    sla: SlaModel = SlaModel()
    auth: AuthModel = AuthModel()
    limits: LimitsModel = LimitsModel()
    cache: dict[str, Any] | None = None  # validated by loadbench.cache.config (docs/cache.md)
    request_log: RequestLogModel | None = None  # docs/ab.md
    admin: AdminModel | None = None
    state: StateModel = StateModel()
    rate_limits: RateLimitsModel | None = None


# ---------------------------------------------------------------- runtime specs (hot path)


@dataclass(slots=True, frozen=True)
class Timeouts:
    connect_s: float
    first_token_s: float
    idle_s: float
    total_s: float


@dataclass(slots=True, frozen=True)
class UpstreamSpec:
    name: str
    url: str  # base URL without trailing slash, e.g. http://host:port/v1
    model: str
    api_key: str | None  # resolved from api_key_env; never logged (repr=False below)
    max_connections: int
    timeouts: Timeouts
    allowed_failures_per_minute: int
    cooldown_period_s: float
    failure_status_codes: frozenset[int]
    protocol: str = "openai"  # the target's dialect (loadbench.protocol.registry)
    aws: AwsSigning | None = None  # bedrock: SigV4 region and credentials (never logged)

    def __repr__(self) -> str:  # keeps the key out of any log line or traceback
        return f"UpstreamSpec(name={self.name!r}, url={self.url!r}, model={self.model!r})"

    def pool_key(self) -> tuple[object, ...]:
        """What a connection pool depends on: equal keys let a reload keep the pool."""
        key_hash = hashlib.sha256(self.api_key.encode()).hexdigest() if self.api_key else ""
        return (self.url, self.max_connections, self.timeouts, key_hash, self.protocol, self.aws)


@dataclass(slots=True, frozen=True)
class RouteTarget:
    target: str
    weight: float
    priority: int
    metadata_match: tuple[tuple[str, str], ...]
    override_params: dict[str, Any]
    sla_cutoff_tpot_ms: float | None
    fallback_candidate: bool


STRATEGIES = ("weight", "priority", "latency", "cost")  # routing: values built in


@dataclass(slots=True, frozen=True)
class Route:
    name: str
    routing: str
    targets: tuple[RouteTarget, ...]
    retry_attempts: int
    retry_delay_s: float
    retry_status_codes: frozenset[int]
    fallback_status_codes: frozenset[int]
    filtered: bool = False  # some target has a metadata_match (else routing skips matching)
    cache: CacheConfig | None = None  # None: this model's answers are never cached
    experiment: ExperimentSpec | None = None
    shadow: ShadowSpec | None = None
    cost: CostRoutingSpec | None = None  # routing: cost
    policy: str = "plain"  # the route policy asked for each request's order (policies.py)


@dataclass(slots=True, frozen=True)
class LatencyTunables:
    window_ns: int
    window_requests: int
    band: float
    min_samples: int
    explore_fraction: float


@dataclass(slots=True, frozen=True)
class SlaTunables:
    window_ns: int
    min_samples: int
    max_samples: int


@dataclass(slots=True, frozen=True)
class Limits:
    max_body_bytes: int
    max_upstream_body_bytes: int
    max_event_bytes: int
    body_timeout_s: float
    idle_timeout_s: float
    client_write_timeout_s: float
    max_connections: int | None


@dataclass(slots=True, frozen=True)
class RateLimit:
    requests_per_minute: int | None = None  # None: not limited
    tokens_per_minute: int | None = None


@dataclass(slots=True, frozen=True)
class RateLimits:
    per_key: RateLimit
    by_key: dict[bytes, RateLimit]  # sha256 of a key -> its own limits

    def of(self, digest: bytes | None) -> RateLimit:
        found = self.by_key.get(digest) if digest is not None else None
        return self.per_key if found is None else found


@dataclass(slots=True, frozen=True)
class StateSpec:
    backend: str  # local | redis
    url: str | None = field(default=None, repr=False)  # read from url_env; never logged
    prefix: str = "loadbench:"
    timeout_s: float = 0.25


@dataclass(slots=True, frozen=True)
class GatewaySpec:
    targets: dict[str, UpstreamSpec]
    routes: dict[str, Route]
    latency: LatencyTunables
    sla: SlaTunables
    client_key_digests: frozenset[bytes]  # sha256 of each accepted client key; empty = no auth
    limits: Limits
    # namespace -> digests of the keys bound to it (auth.namespaces); empty: the header is unbound
    namespace_digests: dict[str, frozenset[bytes]] = field(default_factory=dict)
    source: str = field(default="")
    # values of the environment variables named by cache embedders' api_key_env (never logged)
    embedder_env: dict[str, str] = field(default_factory=dict, repr=False)
    request_log: RequestLogSpec | None = None
    admin_key_digests: frozenset[bytes] = frozenset()  # sha256 of each admin key; empty = no admin API
    state: StateSpec = StateSpec("local")
    rate_limits: RateLimits | None = None


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_model(raw: object, path: str) -> GatewayModel:
    return validate(GatewayModel, raw, path)


def _read_keys(auth: AuthModel, path: str, env: dict[str, str]) -> frozenset[bytes]:
    keys: list[str] = []
    if auth.api_keys_env:
        value = env.get(auth.api_keys_env)
        if not value:
            raise ConfigError(path, "auth.api_keys_env",
                              f"environment variable {auth.api_keys_env} is not set",
                              "export it (comma-separated keys) or remove the field")
        keys += value.replace("\n", ",").split(",")
    if auth.api_keys_file:
        key_path = Path(auth.api_keys_file)
        if not key_path.is_absolute():
            key_path = Path(path).parent / key_path
        try:
            keys += key_path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(path, "auth.api_keys_file", f"cannot read {key_path}: {exc.strerror}",
                              "point it at a file with one key per line") from None
    keys = [k.strip() for k in keys if k.strip() and not k.strip().startswith("#")]
    if (auth.api_keys_env or auth.api_keys_file) and not keys:
        raise ConfigError(path, "auth", "auth is configured but no key was found", "add at least one key")
    return frozenset(key_digest(k) for k in keys)


def env_keys(env: dict[str, str], name: str) -> list[str]:
    """The keys an environment variable holds (comma- or newline-separated)."""
    return [k.strip() for k in env.get(name, "").replace("\n", ",").split(",") if k.strip()]


def _namespace_keys(auth: AuthModel, path: str, env: dict[str, str]) -> dict[str, frozenset[bytes]]:
    bound: dict[str, frozenset[bytes]] = {}
    for namespace, name in auth.namespaces.items():
        keys = env_keys(env, name)
        if not keys:
            raise ConfigError(path, f"auth.namespaces.{namespace}", f"environment variable {name} is not set",
                              "export it (comma-separated keys allowed to use this namespace)")
        bound[namespace] = frozenset(key_digest(k) for k in keys)
    return bound


def _policy_of(vm: VirtualModelModel, path: str, where: str) -> str:
    """The route policy a virtual model's requests ask: an experiment's, cost's, the plain strategies', or
    the policy registered under its ``routing:`` name."""
    from loadbench.gateway.policies import registered  # lazy: the policies import this module's records

    custom = registered()
    if vm.routing not in STRATEGIES and vm.routing not in custom:
        raise ConfigError(path, f"{where}.routing", f"unknown routing {vm.routing!r}",
                          "use one of: " + ", ".join([*STRATEGIES, *sorted(custom)]))
    if vm.experiment is not None:
        return "experiment"
    if vm.routing == "cost":
        return "cost"
    return "plain" if vm.routing in STRATEGIES else vm.routing


def compile_model(model: GatewayModel, path: str, env: dict[str, str] | None = None) -> GatewaySpec:
    """Cross-check references and build the runtime spec."""
    env = environment() if env is None else env
    targets: dict[str, UpstreamSpec] = {}
    for i, t in enumerate(model.targets):
        if t.name in targets:
            raise ConfigError(path, f"targets[{i}].name", f"duplicate target name {t.name!r}",
                              "give every target a unique name")
        api_key = None
        if t.api_key_env:
            api_key = env.get(t.api_key_env)
            if not api_key:
                raise ConfigError(path, f"targets[{i}].api_key_env",
                                  f"environment variable {t.api_key_env} is not set",
                                  "export it or remove api_key_env")
        protocol = target_protocol(t.protocol, path, f"targets[{i}].protocol")
        if protocol == "gemini":
            try:
                check_model(t.model)
            except InputError as exc:
                raise ConfigError(path, f"targets[{i}].model", str(exc), "name the model, e.g. gemini-2.5-flash") \
                    from None
        aws = aws_signing(t, path, f"targets[{i}]", env)
        to = t.timeouts
        ft = t.failure_tolerance
        targets[t.name] = UpstreamSpec(
            name=t.name, url=t.url.rstrip("/"), model=t.model, api_key=api_key,
            max_connections=t.max_connections,
            timeouts=Timeouts(to.connect_s, to.first_token_s, to.idle_s, to.total_s),
            allowed_failures_per_minute=ft.allowed_failures_per_minute,
            cooldown_period_s=ft.cooldown_period_s,
            failure_status_codes=frozenset(ft.failure_status_codes), protocol=protocol, aws=aws)
    base_cache = load_cache_config(model.cache, path=path, prefix="cache") if model.cache is not None else None
    embedder_env: dict[str, str] = {}
    routes: dict[str, Route] = {}
    for i, vm in enumerate(model.virtual_models):
        where = f"virtual_models[{i}]"
        if vm.name in routes:
            raise ConfigError(path, f"{where}.name", f"duplicate virtual model {vm.name!r}",
                              "give every virtual model a unique name")
        policy = _policy_of(vm, path, where)
        seen: set[str] = set()
        rts: list[RouteTarget] = []
        for j, rt in enumerate(vm.targets):
            if rt.target not in targets:
                raise ConfigError(path, f"{where}.targets[{j}].target", f"unknown target {rt.target!r}",
                                  "use a name from the top-level targets list: " + ", ".join(targets))
            if rt.target in seen:
                raise ConfigError(path, f"{where}.targets[{j}].target", f"target {rt.target!r} listed twice",
                                  "list each target once per virtual model")
            seen.add(rt.target)
            if rt.sla_cutoff is not None and vm.routing != "priority":
                raise ConfigError(path, f"{where}.targets[{j}].sla_cutoff",
                                  "sla_cutoff only applies to priority routing",
                                  "set routing: priority or remove sla_cutoff")
            if "model" in rt.override_params or "stream" in rt.override_params:
                raise ConfigError(path, f"{where}.targets[{j}].override_params",
                                  "model and stream cannot be overridden",
                                  "set the upstream model in the target's `model` field")
            rts.append(RouteTarget(
                target=rt.target, weight=rt.weight, priority=rt.priority,
                metadata_match=tuple(sorted(rt.metadata_match.items())),
                override_params=dict(rt.override_params),
                sla_cutoff_tpot_ms=rt.sla_cutoff.time_per_output_token_ms if rt.sla_cutoff else None,
                fallback_candidate=rt.fallback_candidate))
        if vm.routing == "weight" and not any(rt.weight > 0 for rt in rts):
            raise ConfigError(path, f"{where}.targets", "every weight is 0",
                              "give at least one target a weight > 0")
        cache = _route_cache(base_cache, vm.cache, path, f"{where}.cache")
        if cache is not None:
            _embedder_key(cache, path, f"{where}.cache" if isinstance(vm.cache, dict) else "cache", env,
                          embedder_env)
        experiment = None
        if vm.experiment is not None:
            if model.request_log is None:
                raise ConfigError(path, f"{where}.experiment", "experiments need the request log",
                                  "add a top-level request_log: {path: gateway.db}")
            arms = [vm.experiment.incumbent, vm.experiment.candidate]
            experiment = compile_experiment(vm.experiment, [rt.target for rt in rts], path, f"{where}.experiment",
                                            env, arms + [targets[a].model for a in arms if a in targets])
        shadow = None
        if vm.shadow is not None:
            if model.request_log is None:
                raise ConfigError(path, f"{where}.shadow", "shadow traffic needs the request log (answers go there)",
                                  "add a top-level request_log: {path: gateway.db}")
            shadow = compile_shadow(vm.shadow, list(targets), path, f"{where}.shadow")
        cost = None
        if vm.routing == "cost":
            if vm.cost_routing is None or model.request_log is None:
                raise ConfigError(path, f"{where}.routing", "routing: cost needs cost_routing and the request log",
                                  "add cost_routing: {quality_floor: 0.9} and a top-level request_log: {path: ...}")
            cost = compile_cost_routing(vm.cost_routing, path, f"{where}.cost_routing")
        routes[vm.name] = Route(
            name=vm.name, routing=vm.routing, targets=tuple(rts),
            retry_attempts=vm.retry.attempts, retry_delay_s=vm.retry.delay_ms / 1000.0,
            retry_status_codes=frozenset(vm.retry.on_status_codes),
            fallback_status_codes=frozenset(vm.fallback_status_codes),
            filtered=any(rt.metadata_match for rt in rts), cache=cache, experiment=experiment,
            shadow=shadow, cost=cost, policy=policy)
    if model.request_log is not None and model.request_log.backend == "postgres":
        _refuse_row_readers(routes, path, counts_rows=model.state.backend == "redis")
    lr = model.latency_routing
    sla = model.sla
    if sla.min_samples > sla.max_samples:
        raise ConfigError(path, "sla.min_samples", "is larger than sla.max_samples", "lower min_samples")
    return GatewaySpec(
        targets=targets, routes=routes,
        latency=LatencyTunables(round(lr.window_s * 1e9), lr.window_requests, lr.band, lr.min_samples,
                                lr.explore_fraction),
        sla=SlaTunables(round(sla.window_s * 1e9), sla.min_samples, sla.max_samples),
        client_key_digests=_read_keys(model.auth, path, env),
        limits=Limits(**model.limits.model_dump()), namespace_digests=_namespace_keys(model.auth, path, env),
        source=path, embedder_env=embedder_env,
        request_log=compile_request_log(model.request_log, path, env) if model.request_log else None,
        admin_key_digests=_admin_keys(model.admin, path, env), state=_state(model, path, env),
        rate_limits=_rate_limits(model.rate_limits, path, env) if model.rate_limits is not None else None)


def _rate_limits(model: RateLimitsModel, path: str, env: dict[str, str]) -> RateLimits:
    by_key: dict[bytes, RateLimit] = {}
    for i, entry in enumerate(model.keys):
        keys = env_keys(env, entry.api_keys_env)
        if not keys:
            raise ConfigError(path, f"rate_limits.keys[{i}].api_keys_env",
                              f"environment variable {entry.api_keys_env} is not set",
                              "export it (comma-separated keys these limits apply to) or remove the entry")
        for key in keys:
            by_key[key_digest(key)] = RateLimit(entry.requests_per_minute, entry.tokens_per_minute)
    per_key = model.per_key
    return RateLimits(RateLimit(per_key.requests_per_minute, per_key.tokens_per_minute), by_key)


def _state(model: GatewayModel, path: str, env: dict[str, str]) -> StateSpec:
    st = model.state
    if st.backend == "local":
        if st.url_env is not None:
            raise ConfigError(path, "state.url_env", "url_env applies only to backend: redis",
                              "remove url_env, or set backend: redis")
        return StateSpec("local", prefix=st.prefix, timeout_s=st.timeout_ms / 1000)
    if st.url_env is None:
        raise ConfigError(path, "state.url_env", "backend: redis needs the variable that holds the Redis URL",
                          "add url_env: REDIS_URL and export REDIS_URL=redis://host:6379/0")
    url = env.get(st.url_env)
    if not url:
        raise ConfigError(path, "state.url_env", f"environment variable {st.url_env} is not set",
                          f"export {st.url_env}=redis://host:6379/0 (rediss:// for TLS) before starting")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(path, "state.url_env", f"environment variable {st.url_env} does not hold a Redis URL",
                          "set it to redis://[user:password@]host:port/db (or rediss://, unix://)")
    if model.request_log is None:
        raise ConfigError(path, "state.backend", "backend: redis shares the experiments, guardrails and budgets"
                          " that the request log feeds", "add a top-level request_log: {path: gateway.db}")
    return StateSpec("redis", url, st.prefix, st.timeout_ms / 1000)


def _refuse_row_readers(routes: dict[str, Route], path: str, *, counts_rows: bool) -> None:
    """With the log in PostgreSQL, the local shared state (a SQLite file on this host) does not see the
    logged rows, so what it reads from them (a guardrail's window, shadow and judge spend, live cost
    and feedback) would stay empty and never act: refused rather than silently idle. A state backend
    that ``counts_rows`` itself (Redis, fed by every replica's batches, feedback and judge grades, the
    grades and judge spend written to the PostgreSQL log) keeps the guardrails' windows with
    ``min_quality``, the shadow spend and the answer judge; cost routing's live figures are still read
    from a log it cannot see, so it stays refused."""
    fix = ("use backend: sqlite on one host" if counts_rows else
           "use backend: sqlite on one host, or state: {backend: redis}, which counts the rows itself")
    for i, route in enumerate(routes.values()):
        where = f"virtual_models[{i}]"
        e = route.experiment
        if e is not None and not counts_rows:
            g = e.guardrails
            read = (g.max_error_rate, g.max_p95_ttft_ms, g.max_p95_e2e_ms, g.min_quality)
            if read != (None,) * len(read):
                raise ConfigError(path, f"{where}.experiment.rollback", "rollback guardrails read the logged "
                                  "rows through the shared state, which cannot see a PostgreSQL log", fix)
            if e.judge is not None:
                raise ConfigError(path, f"{where}.experiment.quality.judge", "the answer judge keeps its grades "
                                  "and spend in the shared state, which cannot see a PostgreSQL log", fix)
        if not counts_rows and route.shadow is not None and route.shadow.budget_usd_per_day is not None:
            raise ConfigError(path, f"{where}.shadow.budget_usd_per_day", "the shadow budget reads the logged "
                              "spend through the shared state, which cannot see a PostgreSQL log", fix)
        if route.cost is not None:
            raise ConfigError(path, f"{where}.routing", "cost routing reads live cost and feedback through the "
                              "shared state, which cannot see a PostgreSQL log", fix)


# ---------------------------------------------------------------- target protocols


def target_protocol(name: str, path: str, where: str) -> str:
    """A target's ``protocol:``, checked against the registered dialects before any request."""
    if name not in registry.names():
        raise ConfigError(path, where, f"unknown protocol {name!r}",
                          "use one of: " + ", ".join(registry.names()))
    return name


@dataclass(frozen=True, slots=True)
class AwsSigning:
    """How a Bedrock target's requests are signed (SigV4): its region and the credentials found."""

    region: str
    credentials: AwsCredentials = field(repr=False)


def aws_signing(t: TargetModel, path: str, where: str, env: dict[str, str]) -> AwsSigning | None:
    """A Bedrock target's region and credentials: the standard AWS chain's (``credentials.aws_credentials``:
    the keys in ``env``, else its ``aws_profile``, the shared files, a container's or instance's role),
    read once before serving."""
    if t.protocol != "bedrock":
        for name in ("region", "aws_profile"):
            if getattr(t, name) is not None:
                raise ConfigError(path, f"{where}.{name}", f"only a bedrock target is signed for an AWS {name}",
                                  f"remove {name} or set protocol: bedrock")
        return None
    try:
        region = check_region(t.region or env.get("AWS_REGION"))
    except InputError as exc:
        raise ConfigError(path, f"{where}.region", str(exc), "add region: us-east-1 (the region of its url)") from None
    if t.api_key_env:
        raise ConfigError(path, f"{where}.api_key_env", "a bedrock target is signed with AWS credentials, not a key",
                          "remove api_key_env; export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or set aws_profile")
    found = aws_credentials(t.aws_profile, env)
    if found is None:
        raise ConfigError(path, where, "the standard AWS chain found no credentials for this bedrock target",
                          "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or set aws_profile to a profile"
                          " that has them")
    return AwsSigning(region, found)


def _admin_keys(admin: AdminModel | None, path: str, env: dict[str, str]) -> frozenset[bytes]:
    if admin is None:
        return frozenset()
    keys = [k.strip() for k in env.get(admin.api_keys_env, "").split(",") if k.strip()]
    if not keys:
        raise ConfigError(path, "admin.api_keys_env", f"environment variable {admin.api_keys_env} is not set",
                          "export it (comma-separated admin keys) or remove the admin block")
    return frozenset(key_digest(k) for k in keys)


def _route_cache(base: CacheConfig | None, block: dict[str, Any] | bool | None, path: str,
                 where: str) -> CacheConfig | None:
    """A virtual model's cache: the gateway's, with the model's own block over it, or off."""
    if block is False:
        return None
    if block is None:
        return base
    if block is True:
        return base or CacheConfig()
    return (base or CacheConfig()).with_overrides(block, path=path, prefix=where)


def _embedder_key(cache: CacheConfig, path: str, where: str, env: dict[str, str], out: dict[str, str]) -> None:
    embedder = cache.embedder
    if isinstance(embedder, OpenAIEmbedderConfig) and embedder.api_key_env:
        value = env.get(embedder.api_key_env)
        if not value:
            raise ConfigError(path, f"{where}.embedder.api_key_env",
                              f"environment variable {embedder.api_key_env} is not set",
                              "export it or remove api_key_env")
        out[embedder.api_key_env] = value


def load_config(path: str | Path, env: dict[str, str] | None = None) -> GatewaySpec:
    """Read, validate and compile a gateway YAML file; raises ConfigError."""
    p = str(path)
    raw = read_yaml(Path(p))
    if not raw:
        raise ConfigError(p, "(top level)", "the file is empty", "see profiles/gateway/example.yaml")
    return compile_model(parse_model(raw, p), p, env)
