"""``SharedState`` in Redis: one state for N gateway replicas on several hosts (docs/deploy.md).

What Redis holds, under the configured prefix ``P``:

- ``P exp:NAME``: an experiment's durable record (hash: weight, state, reason, updated_ms, criteria,
  version), the truth every replica routes by; ``P exps`` the set of names; ``P events`` the newest
  ``EVENTS_KEPT`` experiment events (JSON, newest first). Every change is one Lua script: the record, its
  version, the event and a notification on the channel ``P changes`` happen together or not at all.
- ``P win:EXP:ARM:SECOND`` (requests, errors) and ``P lat:EXP:ARM:SECOND`` (the TTFT and E2E of each
  answered request): an arm's guardrail window, one bucket per second, added to by every replica's
  ``observe`` and expiring after the longest window (``window_ttl_s``).
- ``P rated:EXP:ARM`` (request id by the request's time) and ``P score:EXP:ARM`` (request id to its newest
  score): the ratings of an arm's requests (feedback, judge grades, inline checks) that ``min_quality``
  judges, added to by ``rate`` where each arrives, trimmed to the longest window.
- ``P spend:shadow:DAY`` and ``P spend:judge:EXP:DAY``: the day's spend, one figure for every replica.
- ``P cool:TARGET``: a target's cooldown, a key whose TTL ends with it (``P cools`` names the targets).

The notification only wakes the readers (``listen``); the records are read back, so a lost message
costs at most the poller's next turn. Every call is bounded by the socket timeout; after a failure the
backend answers ``StateUnavailable`` at once for ``RETRY_S`` (no thread waits on a dead Redis again and
again), logs one line a minute while it stays away and one when it is back, and meanwhile serves the
guardrails from this replica's own view (``localview.py``): its window, the last records it read and
the trips it makes, written back on return only where the record did not change in between.

The request log stays where it is: a judge's grade and spend are written to it (``grades``, the shared
PostgreSQL log's store, or this replica's SQLite file through ``local``); cost routing's live figures are
read from this replica's own rows (``local``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import redis

from loadbench.gateway import redisconn
from loadbench.gateway.abconfig import ExperimentSpec
from loadbench.gateway.config import StateSpec
from loadbench.gateway.costroute import LiveStats
from loadbench.gateway.experiments import WindowStats, registrations
from loadbench.gateway.localview import LocalView, arm_rows
from loadbench.gateway.logdb import COLUMNS, NULL, ExperimentRow, transition
from loadbench.gateway.logstore import LogRejected, LogStore, LogUnavailable
from loadbench.gateway.sharedstate import Rating, SqliteState, StateUnavailable
from loadbench.metrics.quantile import nearest_rank
from loadbench.units import utc_day

log = logging.getLogger("loadbench.gateway")
EVENTS_KEPT = 1000
RETRY_S = redisconn.RETRY_S  # after a failed call, calls fail at once for this long
DOWN_LOG_EVERY_S = 60.0
LATENCIES_PER_SECOND = 5000  # per arm and second: beyond it the P95s read a sample of that second
_COOLED = "cool:"  # a notification about a cooldown starts with this; others name an experiment
_COST, _ROLE, _TS = COLUMNS.index("cost_usd"), COLUMNS.index("role"), COLUMNS.index("ts_ms")

_REGISTER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'weight', ARGV[2], 'state', ARGV[7], 'reason', ARGV[8], 'updated_ms', ARGV[3],
           'criteria', ARGV[4], 'version', 1)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[5])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
redis.call('PUBLISH', KEYS[4], ARGV[1])
return 1
"""
# ARGV: state, reason, updated_ms, weight ('' keeps it), only if running ('1'), event JSON, events kept,
# name, only at this version ('' for any)
_CHANGE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[5] == '1' and redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
if ARGV[9] ~= '' and redis.call('HGET', KEYS[1], 'version') ~= ARGV[9] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'reason', ARGV[2], 'updated_ms', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'weight', ARGV[4]) end
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('LPUSH', KEYS[2], ARGV[6])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)
redis.call('PUBLISH', KEYS[3], ARGV[8])
return 1
"""
# a cooldown never shortens one already shared: the key keeps the later deadline
_COOL = """
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
local untilms = tonumber(ARGV[1])
if untilms <= old then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('PUBLISH', KEYS[3], ARGV[4])
return 1
"""
_COOLDOWNS = """
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', ARGV[1] .. name)
  if v then table.insert(out, name); table.insert(out, v) else redis.call('SREM', KEYS[1], name) end
end
return out
"""


# KEYS: rated (zset), scores (hash); ARGV: request id, request ts ms, score, oldest kept ms, ttl ms
_RATE = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4], 'LIMIT', 0, 1000)
if #old > 0 then
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('ZREM', KEYS[1], unpack(old))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"""
# KEYS: rated, scores; ARGV: since ms, at most this many (the newest). Returns {count, sum}.
_RATINGS = """
local n, sum = 0, 0
for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', ARGV[1], 'LIMIT', 0, ARGV[2])) do
  local score = redis.call('HGET', KEYS[2], id)
  if score then n = n + 1; sum = sum + tonumber(score) end
end
return {n, tostring(sum)}
"""
WINDOW_ROWS = 20_000  # the newest rated requests a window reads, as the SQLite window reads its rows


def _event(now_ms: int, name: str, action: str, weight: float | None, reason: str, worker: int) -> str:
    return orjson.dumps({"ts_ms": now_ms, "experiment": name, "action": action, "weight": weight,
                         "reason": reason, "worker": worker}).decode()


def _latency(value: str) -> float | None:
    return float(value) if value else None


class RedisState:
    """``SharedState`` for N replicas. Thread-safe (redis-py's pool); ``listen`` starts the one thread
    that hears the notifications."""

    def __init__(self, spec: StateSpec, local: SqliteState, window_ttl_s: float,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 grades: LogStore | None = None) -> None:
        assert spec.url is not None
        self.prefix = spec.prefix
        self.local = local
        # where a judge's grades and spend land for loadbench ab: the request log kept apart from ``local``
        # (PostgreSQL; one connection, so one caller at a time), or None when ``local``'s file is the log
        self.grades = grades
        self._grades_lock = threading.Lock()
        self.window_ttl_s = window_ttl_s
        self.clock = clock
        self.view = LocalView()
        self.breaker = redisconn.Breaker("state backend redis", "serving from this replica's view", monotonic,
                                         log_every_s=DOWN_LOG_EVERY_S)
        self._returned: list[Callable[[], None]] = []  # called when Redis answers again after failing
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self.client = redisconn.sync_client(spec)
        self._register = self.client.register_script(_REGISTER)
        self._change = self.client.register_script(_CHANGE)
        self._cool = self.client.register_script(_COOL)
        self._cooldowns = self.client.register_script(_COOLDOWNS)
        self._rate = self.client.register_script(_RATE)
        self._ratings = self.client.register_script(_RATINGS)

    def _key(self, *parts: object) -> str:
        return self.prefix + ":".join(map(str, parts))

    # ------------------------------------------------------------------ availability

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """One bounded exchange with Redis; any failure is ``StateUnavailable`` and opens a pause of
        ``RETRY_S`` in which calls fail at once."""
        if not self.breaker.closed():
            raise StateUnavailable(f"{what}: the Redis state backend is unavailable")
        try:
            yield
        except redis.RedisError as exc:
            self.breaker.failed(exc)
            raise StateUnavailable(f"{what}: {type(exc).__name__}") from exc
        if self.breaker.succeeded():  # the replicas converge on the records: the poller reads them now
            for hook in self._returned:
                hook()

    @property
    def up(self) -> bool:
        return self.breaker.up

    @property
    def errors(self) -> int:
        return self.breaker.failures

    def on_return(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` (on the calling thread) each time Redis answers again after failing."""
        self._returned.append(hook)

    def render(self, worker: str) -> list[str]:
        up = "loadbench_gateway_state_backend_up"
        errors = "loadbench_gateway_state_backend_errors_total"
        return [f"# HELP {up} 1 while the shared state's backend answers, 0 while the replica serves from its"
                " own view", f"# TYPE {up} gauge", f'{up}{{backend="redis",worker="{worker}"}} {int(self.up)}',
                f"# HELP {errors} Calls to the shared state's backend that failed or timed out",
                f"# TYPE {errors} counter", f'{errors}{{backend="redis",worker="{worker}"}} {self.errors}']

    # ------------------------------------------------------------------ notifications

    def listen(self, on_experiment: Callable[[], None], on_cooldown: Callable[[], None]) -> None:
        """Start the thread that hears the change notifications: each one wakes the matching reader; a
        (re)subscription wakes both, so a replica that reconnects reconciles at once."""

        def hear() -> None:
            while not self._stop.is_set():
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                try:
                    pubsub.subscribe(self._key("changes"))
                    on_experiment()
                    on_cooldown()
                    while not self._stop.is_set():
                        message = pubsub.get_message(timeout=1.0)
                        if message is not None:
                            data = str(message.get("data", ""))
                            (on_cooldown if data.startswith(_COOLED) else on_experiment)()
                except (redis.RedisError, OSError, ValueError):
                    self._stop.wait(RETRY_S)  # down: the other calls say so; try again in a second
                finally:
                    pubsub.close()

        self._listener = threading.Thread(target=hear, name="gateway-state-listener", daemon=True)
        self._listener.start()

    # ------------------------------------------------------------------ experiments

    def register_experiments(self, specs: Iterable[ExperimentSpec], now_ms: int, worker: int) -> None:
        """New experiments start running; a record the store lost (a restart without persistence) is put
        back as this replica last read it, not as the config starts it: a lost store never undoes a
        rollback that a replica saw."""
        known = self.view.rows
        with self._call("registering experiments"):
            for name, weight, criteria in registrations(specs):
                row = known.get(name)
                state, reason = ("running", "") if row is None else (row.state, row.reason)
                weight = weight if row is None else row.weight
                event = _event(now_ms, name, "start" if row is None else "restore", weight, reason, worker)
                self._register(keys=[self._key("exp", name), self._key("exps"), self._key("events"),
                                     self._key("changes")],
                               args=[name, repr(weight), now_ms, criteria, event, EVENTS_KEPT, state, reason])

    def experiments(self) -> dict[str, ExperimentRow]:
        """The records in Redis, after writing back the trips made while it was away; while it is away,
        the last ones read with this replica's trips."""
        try:
            if self.view.pending:
                self._write_back()
            with self._call("reading experiments"):
                names: list[str] = sorted(self.client.smembers(self._key("exps")))  # type: ignore[arg-type]
                pipe = self.client.pipeline(transaction=False)
                for name in names:
                    pipe.hmget(self._key("exp", name), "weight", "state", "reason", "updated_ms", "version")
                found = pipe.execute()
        except StateUnavailable:
            return self.view.view()
        rows: dict[str, ExperimentRow] = {}
        versions: dict[str, int] = {}
        for name, (weight, state, reason, updated_ms, version) in zip(names, found, strict=True):
            if state is None:
                continue
            rows[name] = ExperimentRow(name, float(weight), state, reason or "", int(updated_ms))
            versions[name] = int(version or 0)
        self.view.remember(rows, versions)
        return rows

    def change_experiment(self, name: str, action: str, weight: float | None, reason: str, now_ms: int,
                          worker: int) -> bool:
        try:
            return self._write(name, action, weight, reason, now_ms, worker, None)
        except StateUnavailable:
            if action == "trip":  # a guardrail still trips on this replica; written back on return
                return self.view.trip(name, reason, now_ms, worker)
            raise  # an admin action needs the shared record (the API answers 503)

    def _write(self, name: str, action: str, weight: float | None, reason: str, now_ms: int, worker: int,
               version: int | None) -> bool:
        """One change in one script: False when the record is unknown, not running (a trip) or no longer
        at ``version``."""
        state, new_weight = transition(action, weight)
        with self._call(f"changing experiment {name}"):
            done = self._change(
                keys=[self._key("exp", name), self._key("events"), self._key("changes")],
                args=[state, reason, now_ms, "" if new_weight is None else repr(new_weight),
                      "1" if action == "trip" else "0", _event(now_ms, name, action, new_weight, reason, worker),
                      EVENTS_KEPT, name, "" if version is None else version])
        return bool(done)

    def _write_back(self) -> None:
        """The trips made while Redis was away, each written only if its record did not change since."""
        pending = self.view.take_pending()
        for i, p in enumerate(pending):
            try:
                kept = self._write(p.name, "trip", 0.0, p.reason, p.now_ms, p.worker, p.base_version)
            except StateUnavailable:
                self.view.keep_pending(pending[i:])
                raise
            if kept:
                log.warning("experiment %s: the trip made while Redis was away is now the shared record", p.name)
            else:
                log.warning("experiment %s: the trip made while Redis was away is not written, the record changed"
                            " meanwhile (another replica's trip or an admin change): the durable record wins", p.name)

    def experiment_events(self, limit: int = 100) -> list[dict[str, object]]:
        with self._call("reading experiment events"):
            raw = self.client.lrange(self._key("events"), 0, limit - 1)
        return [orjson.loads(e) for e in raw]

    # ------------------------------------------------------------------ guardrails and budgets

    def observe(self, rows: Sequence[tuple[object, ...]]) -> None:
        self.view.add(rows)
        pipe = self.client.pipeline(transaction=False)
        ttl_s = max(1, round(self.window_ttl_s))
        for exp, arm, ts_ms, _status, outcome, ttft, e2e in arm_rows(rows):
            if outcome == "client_gone":
                continue
            second = ts_ms // 1000
            win = self._key("win", exp, arm, second)
            pipe.hincrby(win, "n", 1)
            if outcome != "ok":
                pipe.hincrby(win, "err", 1)
            else:
                lat = self._key("lat", exp, arm, second)
                pipe.rpush(lat, f"{'' if ttft is None else ttft} {'' if e2e is None else e2e}")
                pipe.ltrim(lat, -LATENCIES_PER_SECOND, -1)
                pipe.expire(lat, ttl_s)
            pipe.expire(win, ttl_s)
        spend: dict[int, float] = {}
        for r in rows:
            cost = r[_COST]
            if r[_ROLE] == "shadow" and cost is not NULL and cost is not None:
                day = utc_day(int(r[_TS]) / 1000)  # type: ignore[call-overload]
                spend[day] = spend.get(day, 0.0) + float(cost)  # type: ignore[arg-type]
        for day, usd in spend.items():
            key = self._key("spend", "shadow", day)
            pipe.incrbyfloat(key, usd)
            pipe.expire(key, 3 * 86_400)
        if not len(pipe):
            return
        try:
            with self._call("adding the log's rows to the windows"):
                pipe.execute()
        except StateUnavailable:
            pass  # this replica's view has them; the shared window misses them (docs/deploy.md)

    def window(self, experiment: str, arm: str, since_ms: int) -> WindowStats:
        first, last = since_ms // 1000, int(self.clock()) + 1
        try:
            with self._call(f"reading the window of {experiment}"):
                pipe = self.client.pipeline(transaction=False)
                for second in range(first, last + 1):
                    pipe.hmget(self._key("win", experiment, arm, second), "n", "err")
                    pipe.lrange(self._key("lat", experiment, arm, second), 0, -1)
                found = pipe.execute()
                rated, total = self._ratings(keys=[self._key("rated", experiment, arm),
                                                   self._key("score", experiment, arm)], args=[since_ms, WINDOW_ROWS])
        except StateUnavailable:
            return self.view.window(experiment, arm, since_ms)
        n = errors = 0
        ttfts: list[float] = []
        e2es: list[float] = []
        for i in range(0, len(found), 2):
            count, err = found[i]
            n += int(count or 0)
            errors += int(err or 0)
            for pair in found[i + 1]:
                t, e = (_latency(v) for v in pair.split(" "))
                if t is not None:
                    ttfts.append(t)
                if e is not None:
                    e2es.append(e)
        rated = int(rated)
        return WindowStats(n, errors, nearest_rank(ttfts, 95), nearest_rank(e2es, 95), rated,
                           float(total) / rated if rated else None)

    def rate(self, ratings: Sequence[Rating]) -> None:
        if not ratings:
            return
        ttl_ms = max(1000, round(self.window_ttl_s * 1000))
        oldest_ms = round(self.clock() * 1000) - ttl_ms
        with self._call("rating requests"):
            pipe = self.client.pipeline(transaction=False)
            for r in ratings:
                self._rate(keys=[self._key("rated", r.experiment, r.arm), self._key("score", r.experiment, r.arm)],
                           args=[r.request_id, r.request_ts_ms, repr(r.score), oldest_ms, ttl_ms], client=pipe)
            pipe.execute()

    def _spend(self, what: str, parts: tuple[object, ...], since_ms: int) -> float:
        days = range(utc_day(since_ms / 1000), utc_day(self.clock()) + 1)
        with self._call(f"reading {what} spend"):
            found: list[Any] = self.client.mget([self._key("spend", *parts, day) for day in days])
        return sum(float(v) for v in found if v is not None)

    def shadow_spend_usd(self, since_ms: int) -> float:
        return self._spend("shadow", ("shadow",), since_ms)

    def judge_spend_usd(self, experiment: str, since_ms: int) -> float:
        return self._spend("judge", ("judge", experiment), since_ms)

    def add_judge_grade(self, now_ms: int, experiment: str, request_id: str, tenant: str | None,
                        score: float | None, cost_usd: float, since_ms: int) -> float:
        # the spend that budgets the judge is the one figure in Redis (first: the money is spent either way);
        # the grade's feedback row and its cost go to the request log, where loadbench ab reads them
        key = self._key("spend", "judge", experiment, utc_day(now_ms / 1000))
        with self._call("adding judge spend"):
            pipe = self.client.pipeline(transaction=False)
            pipe.incrbyfloat(key, cost_usd)
            pipe.expire(key, 3 * 86_400)
            pipe.execute()
        if self.grades is None:
            self.local.add_judge_grade(now_ms, experiment, request_id, tenant, score, cost_usd, since_ms)
        else:
            try:
                with self._grades_lock:
                    self.grades.add_judge_grade(now_ms, experiment, request_id, tenant, score, cost_usd)
            except (LogUnavailable, LogRejected) as exc:
                raise StateUnavailable(f"writing a judge grade to the request log: {exc}") from exc
        return self.judge_spend_usd(experiment, since_ms)

    def target_stats(self, model: str, target: str, window_requests: int) -> LiveStats:
        return self.local.target_stats(model, target, window_requests)  # this replica's own served requests

    # ------------------------------------------------------------------ health

    def publish_cooldown(self, target: str, until_ms: int, reason: str) -> None:
        ttl_ms = until_ms - round(self.clock() * 1000)
        if ttl_ms <= 0:
            return
        with self._call(f"sharing the cooldown of {target}"):
            self._cool(keys=[self._key("cool", target), self._key("cools"), self._key("changes")],
                       args=[until_ms, ttl_ms, target, _COOLED + target])

    def cooldowns(self, now_ms: int) -> dict[str, int]:
        with self._call("reading cooldowns"):
            flat: list[str] = self._cooldowns(keys=[self._key("cools")], args=[self._key("cool", "")])
        found = {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}
        return {name: until for name, until in found.items() if until > now_ms}

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(timeout=3.0)
        self.client.close()
        self.local.close()
        if self.grades is not None:
            with self._grades_lock:
                self.grades.close()
