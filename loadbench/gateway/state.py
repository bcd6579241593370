"""Everything a request reads, swapped as one object on reload (SIGHUP), and the ``Gateway`` that owns it.

``Gateway`` builds the subsystems and wires them through its event catalogue (``events.py``): with a
request log, the log (a sink), the experiments and their guardrails, shadows, answer judges, cost
estimates and breakdowns are peers that listen to ``exchange_finished`` / ``config_reloaded`` /
``log_batch``, render their own ``/metrics`` section, and read the shared state (``sharedstate.py``)
on the poller's thread (``poller.py``). The exchange knows none of them: it fires events and asks the
route's policy (``policies.py``).

A request takes ``Gateway.state`` once at its start and uses that snapshot to the end, so a
reload never changes the rules under an in-flight request. Pools whose target did not change
(same URL, size, timeouts, key) are carried over, as are health and latency history by target
name; pools no longer used are closed once their in-flight requests finish. Response caches are
carried over when their configuration is unchanged (virtual models with equal cache configs share
one), so a reload that does not touch ``cache:`` keeps every entry.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loadbench.cache import Embedder, ResponseCache, make_embedder
from loadbench.cache.config import CacheConfig
from loadbench.errors import ConfigError
from loadbench.gateway import logdb, logstore
from loadbench.gateway.abconfig import ExperimentSpec
from loadbench.gateway.answer_judge import AnswerJudges
from loadbench.gateway.breakdown import Breakdown
from loadbench.gateway.config import GatewaySpec, load_config
from loadbench.gateway.estimates import CostEstimates
from loadbench.gateway.events import GatewayEvents
from loadbench.gateway.experiments import Experiments, InlineChecks, registrations
from loadbench.gateway.guardrails import POLL_S, Guardrails
from loadbench.gateway.health import TargetHealth
from loadbench.gateway.looplag import LoopDelay, wanted
from loadbench.gateway.metrics import Metrics
from loadbench.gateway.policies import RoutePolicy, factory_of
from loadbench.gateway.poller import Poller
from loadbench.gateway.ratelimit import RateLimiter
from loadbench.gateway.requestlog import RequestLog
from loadbench.gateway.shadow import Shadows
from loadbench.gateway.sharedstate import SharedState, SqliteState, StateUnavailable, inline_ratings, rate_quietly
from loadbench.gateway.stats import TpotWindow
from loadbench.gateway.upstream import Upstream
from loadbench.gateway.watchdog import Watchdog

if TYPE_CHECKING:
    from loadbench.gateway.cachefeed import CacheFeed
    from loadbench.gateway.sharedcache import SharedExactCache

log = logging.getLogger("loadbench.gateway")
MIN_WINDOW_TTL_S = 120.0


def window_ttl_s(spec: GatewaySpec) -> float:
    """How long a shared guardrail window's buckets are kept: the longest window, plus a margin."""
    windows = [r.experiment.guardrails.window_s for r in spec.routes.values() if r.experiment is not None]
    return max([MIN_WINDOW_TTL_S, *(w + 60.0 for w in windows)])


MIRROR_EVERY_S = 1.0  # how often a log kept apart from the shared state copies its experiment records


@dataclass(slots=True)
class GatewayState:
    spec: GatewaySpec
    upstreams: dict[str, Upstream]
    health: dict[str, TargetHealth]
    windows: dict[str, TpotWindow]
    caches: dict[str, ResponseCache]  # virtual model name -> its cache (absent: not cached)
    rng: random.Random  # the gateway's (the same object across reloads)


class Policies(dict[str, RoutePolicy]):
    """The gateway's route policies by name, each built on first use (``policies.route_policy``)."""

    def __init__(self, gw: Gateway) -> None:
        super().__init__()
        self.gw = gw

    def __missing__(self, name: str) -> RoutePolicy:
        policy = self[name] = factory_of(name)(self.gw)
        return policy


class Gateway:
    def __init__(self, spec: GatewaySpec, config_path: str | None = None, seed: int | None = None) -> None:
        self.config_path = config_path
        self.metrics = Metrics()
        self.rng = random.Random(seed)
        self._spec = spec
        self.state: GatewayState | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self.watchdog = Watchdog()
        self._embedders: dict[object, Embedder] = {}  # one per embedder config, for the process's life
        self.events = GatewayEvents()
        self.policies = Policies(self)
        self.poller = Poller()
        self.limiter = RateLimiter()  # per process; with the Redis state, shared (start)
        self.shared_cache: SharedExactCache | None = None  # exact-match entries in Redis (start)
        self.cache_feed: CacheFeed | None = None  # the other replicas' semantic entries (start)
        self._cache_feed_task: asyncio.Task[None] | None = None
        # opened by start() when the config has request_log (experiments, shadows, judges, cost routing
        # need it: the config refuses them without one)
        self.requestlog: RequestLog | None = None
        self.loop_delay: LoopDelay | None = None  # LOADBENCH_GATEWAY_LOOP_DELAY=1 (looplag)
        self.shared: SharedState | None = None
        self.experiments: Experiments | None = None
        self.guardrails: Guardrails | None = None
        self.shadows: Shadows | None = None
        self.judges: AnswerJudges | None = None
        self.estimates: CostEstimates | None = None
        self.breakdown: Breakdown | None = None

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` beyond the request that started it (kept referenced until done)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> None:
        """Open the pools, and the request log and its peers when configured (needs a running loop)."""
        self.state = self._build(self._spec, None)
        if wanted():
            self.loop_delay = LoopDelay(asyncio.get_running_loop()).start()
            self.events.metrics_sections.add(self.loop_delay.render)
        if self._spec.state.backend == "redis":
            from loadbench.gateway.ratelimit import RedisBuckets  # lazy: redis-py only when configured
            from loadbench.gateway.sharedcache import SharedExactCache

            shared_buckets = RedisBuckets(self._spec.state)
            self.limiter = RateLimiter(shared_buckets)
            self.events.metrics_sections.add(shared_buckets.render)
            self.shared_cache = SharedExactCache(self._spec.state)
            self._start_cache_feed(self.shared_cache)
        if self._spec.request_log is not None:
            self._open_log(self._spec)
        self.events.metrics_sections.add(self.events.render_errors)
        self.poller.start()

    def _start_cache_feed(self, shared_cache: SharedExactCache) -> None:
        """Adopt the other replicas' semantic entries into this replica's indexes (started even when no cache
        is semantic yet: a reload may make one so, and the feed reads the current config's caches)."""
        from loadbench.gateway.cachefeed import CacheFeed

        self.cache_feed = feed = CacheFeed(shared_cache, lambda: self.state.caches if self.state is not None else {},
                                           lambda vm: self.metrics.inc("cache_shared", vm, "adopted"))
        self._cache_feed_task = asyncio.get_running_loop().create_task(feed.run())

    def _open_log(self, spec: GatewaySpec) -> None:
        """The request log and its peers, subscribed to the events. Runs at startup, before the first
        request: the experiments are registered and read here, on the loop's thread, once."""
        log_spec = spec.request_log
        assert log_spec is not None
        loop = asyncio.get_running_loop()
        events = self.events
        worker = os.getpid()
        self.requestlog = request_log = RequestLog.open(spec, events, self.rng)
        self.shared = shared = self._open_shared(spec)
        self.experiments = experiments = Experiments(spec.routes, keep_bodies=log_spec.log_bodies == "experiments")
        unregistered: tuple[ExperimentSpec, ...] = ()
        try:  # the current records before the first request: a restarted replica keeps a rollback
            shared.register_experiments(experiments.specs.values(), round(time.time() * 1000), worker)
        except StateUnavailable as exc:
            # a replica whose shared state is away serves the incumbents (no record, no candidate share)
            # until the poller has registered and read the records
            log.warning("experiments not registered yet (%s): incumbents serve until the records are read", exc)
            unregistered = tuple(experiments.specs.values())
        experiments.apply(shared.experiments())
        self.shadows = shadows = Shadows(spec, events.exchange_finished.fire, self.rng)
        self.judges = judges = AnswerJudges(experiments, shared, self.rng)
        self.guardrails = guardrails = Guardrails(experiments, shared, loop, worker,
                                                  wake=lambda: self.poller.wake("experiments"))
        if unregistered:
            guardrails.register_later(unregistered)
        self.estimates = estimates = CostEstimates(
            spec.routes, log_spec.target_prices({name: t.model for name, t in spec.targets.items()}), shared)
        self.breakdown = breakdown = Breakdown(log_spec.metrics_by, log_spec.metrics_values_max)

        # only the listeners this config needs (each is a call per request): log_bodies and the shadow
        # targets are fixed at start-up (docs/gateway.md, "Hot reload"), experiments are not
        if log_spec.log_bodies in ("all", "sampled"):
            events.exchange_started.add_listener(request_log.on_started)
        if shadows.upstreams:  # in this order: a shadow sets the pair id the log's record carries
            events.exchange_finished.add_listener(shadows.on_finished)
        events.exchange_finished.add_listener(judges.on_finished)
        events.exchange_finished.add_listener(request_log.add)
        events.config_reloaded.add_listener(guardrails.on_reload)
        events.config_reloaded.add_listener(judges.on_reload)
        events.log_batch.add_listener(InlineChecks(experiments))
        events.log_batch.add_listener(lambda records, rows, feedback: shared.observe(rows))
        if spec.state.backend == "redis":  # the inline checks' scores, for min_quality's shared window
            events.log_batch.add_listener(lambda records, rows, feedback: rate_quietly(
                shared, inline_ratings(rows, feedback)))
        if breakdown.keys:
            events.log_batch.add_listener(breakdown.on_batch)
        for render in (request_log.render, experiments.render, shadows.render, judges.render, breakdown.render):
            events.metrics_sections.add(render)

        self.poller.add("experiments", POLL_S, guardrails.poll)
        if shadows.budgeted:
            self.poller.add("shadow_spend", POLL_S, lambda now: shadows.read_spend(now, shared))
        if estimates.routes:
            self.poller.add("cost_estimates", estimates.every_s, estimates.refresh)
        if log_spec.backend != "sqlite":  # the log's own experiments and events tables: copies of the state's
            self.poller.add("log_experiments", MIRROR_EVERY_S, lambda now: request_log.mirror(
                shared.experiments(), shared.experiment_events(), dict(
                    (name, criteria) for name, _, criteria in registrations(experiments.specs.values()))))

    def _open_shared(self, spec: GatewaySpec) -> SharedState:
        """The configured state backend (``state.backend``): the request log's SQLite file, or Redis for
        several replicas (then also the cooldowns it shares and its ``/metrics`` lines)."""
        assert spec.request_log is not None
        if spec.request_log.backend != "sqlite":
            logdb.create(spec.request_log.path).close()  # the local state's file, beside a log kept elsewhere
        local = SqliteState(spec.request_log.path)
        if spec.state.backend != "redis":
            return local
        from loadbench.gateway.cooldownsync import POLL_S as COOLDOWN_POLL_S
        from loadbench.gateway.cooldownsync import CooldownSync
        from loadbench.gateway.redisstate import RedisState  # lazy: redis-py only when configured

        # a log kept elsewhere (PostgreSQL) is where the judge's grades and spend land for loadbench ab
        grades = logstore.open_store(spec.request_log, writer=False) if spec.request_log.backend != "sqlite" else None
        shared = RedisState(spec.state, local, window_ttl_s(spec), grades=grades)
        events = self.events
        cooldowns = CooldownSync(shared, asyncio.get_running_loop(), self._health,
                                 wake=lambda: self.poller.wake("cooldowns"))
        events.target_health_changed.add_listener(cooldowns.on_health_changed)
        events.config_reloaded.add_listener(lambda old, new: setattr(shared, "window_ttl_s", window_ttl_s(new)))
        events.metrics_sections.add(shared.render)
        events.metrics_sections.add(cooldowns.render)
        self.poller.add("cooldowns", COOLDOWN_POLL_S, cooldowns.poll)
        shared.on_return(lambda: self.poller.wake("experiments"))
        shared.listen(lambda: self.poller.wake("experiments"), lambda: self.poller.wake("cooldowns"))
        return shared

    def _health(self) -> dict[str, TargetHealth]:
        return self.state.health if self.state is not None else {}

    def _build(self, spec: GatewaySpec, old: GatewayState | None) -> GatewayState:
        upstreams: dict[str, Upstream] = {}
        health: dict[str, TargetHealth] = {}
        windows: dict[str, TpotWindow] = {}
        for name, target in spec.targets.items():
            prev = old.upstreams.get(name) if old else None
            if prev is not None and prev.spec.pool_key() == target.pool_key():
                prev.spec = target
                upstreams[name] = prev
            else:
                upstreams[name] = Upstream(target)
            health[name] = old.health.get(name, TargetHealth()) if old else TargetHealth()
            windows[name] = old.windows.get(name, TpotWindow()) if old else TpotWindow()
        return GatewayState(spec, upstreams, health, windows, self._caches(spec, old), self.rng)

    def _caches(self, spec: GatewaySpec, old: GatewayState | None) -> dict[str, ResponseCache]:
        by_config: dict[CacheConfig, ResponseCache] = {}
        if old is not None:
            for cache in old.caches.values():
                by_config[cache.config] = cache
        caches: dict[str, ResponseCache] = {}
        for name, route in spec.routes.items():
            config = route.cache
            if config is None:
                continue
            found = by_config.get(config)
            if found is None:
                embedder = self._embedders.get(config.embedder)
                if embedder is None:
                    embedder = self._embedders[config.embedder] = make_embedder(config.embedder,
                                                                                 env=spec.embedder_env)
                found = by_config[config] = ResponseCache(config, embedder, clock=time.monotonic)
            caches[name] = found
        return caches

    def reload(self) -> bool:
        """Re-read the config file; on any error keep the current config and say why."""
        if self.config_path is None or self.state is None:
            return False
        try:
            spec = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload rejected, keeping the current config: %s", exc)
            return False
        if spec.request_log is not None and self.requestlog is None:
            # without the log an experiment's arms would be routed as plain targets, with no guardrail
            log.error("reload rejected, keeping the current config: request_log cannot be added by a reload;"
                      " restart the gateway to open it")
            return False
        old = self.state
        self.state = self._build(spec, old)
        self.events.config_reloaded.fire(old.spec, spec)
        kept = set(map(id, self.state.upstreams.values()))
        for up in old.upstreams.values():
            if id(up) not in kept:
                task = asyncio.get_running_loop().create_task(self._close_when_idle(up))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        log.warning("config reloaded from %s: %d targets, %d virtual models", self.config_path,
                    len(spec.targets), len(spec.routes))
        return True

    async def _close_when_idle(self, up: Upstream) -> None:
        deadline = time.monotonic() + up.spec.timeouts.total_s
        while up.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        await up.close()

    async def close(self) -> None:
        self.watchdog.stop()
        if self.loop_delay is not None:
            self.loop_delay.stop()
        self.poller.stop()
        if self.shadows is not None:
            await self.shadows.close()  # their records reach the log before it closes
        if self.judges is not None:
            await self.judges.close()
        if self.requestlog is not None:
            self.requestlog.close()  # writes what is queued
        if self.shared is not None:
            self.shared.close()
        if self._background:
            await asyncio.wait(list(self._background), timeout=5.0)
        for task in list(self._closing):
            task.cancel()
        if self.state is not None:
            for up in self.state.upstreams.values():
                await up.close()
        for embedder in self._embedders.values():
            await embedder.aclose()
        await self.limiter.aclose()
        if self.cache_feed is not None and self._cache_feed_task is not None:
            self.cache_feed.stop()
            self._cache_feed_task.cancel()  # rather than wait for its turn to end (a second at most)
            await asyncio.wait([self._cache_feed_task], timeout=5.0)
        if self.shared_cache is not None:
            await self.shared_cache.aclose()

