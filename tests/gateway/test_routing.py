"""Pure routing, health and SLA logic driven by an injected clock and a seeded RNG."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.gateway.config import LatencyTunables, Route, RouteTarget, SlaTunables
from loadbench.gateway.health import TargetHealth, is_healthy, record_failure, record_success
from loadbench.gateway.routing import target_order
from loadbench.gateway.stats import TpotWindow

S = 1_000_000_000
LAT = LatencyTunables(window_ns=1200 * S, window_requests=100, band=1.2, min_samples=3, explore_fraction=0.05)
SLA = SlaTunables(window_ns=180 * S, min_samples=3, max_samples=10)


def rt(
    name: str,
    weight: float = 1.0,
    priority: int = 0,
    match: dict[str, str] | None = None,
    sla_ms: float | None = None,
    fallback_candidate: bool = True,
) -> RouteTarget:
    return RouteTarget(
        target=name,
        weight=weight,
        priority=priority,
        metadata_match=tuple(sorted((match or {}).items())),
        override_params={},
        sla_cutoff_tpot_ms=sla_ms,
        fallback_candidate=fallback_candidate,
    )


def route(routing: str, *targets: RouteTarget) -> Route:
    return Route(
        name="vm",
        routing=routing,
        targets=targets,
        retry_attempts=0,
        retry_delay_s=0.0,
        retry_status_codes=frozenset(),
        fallback_status_codes=frozenset(),
        filtered=any(t.metadata_match for t in targets),
    )


def fresh(*names: str) -> tuple[dict[str, TargetHealth], dict[str, TpotWindow]]:
    return {n: TargetHealth() for n in names}, {n: TpotWindow() for n in names}


def first_counts(
    r: Route,
    n: int,
    seed: int = 7,
    now_ns: int = 10 * S,
    meta: dict[str, str] | None = None,
    health: dict[str, TargetHealth] | None = None,
    windows: dict[str, TpotWindow] | None = None,
) -> Counter[str]:
    names = [t.target for t in r.targets]
    h, w = fresh(*names)
    rng = random.Random(seed)
    return Counter(
        target_order(r, meta or {}, health or h, windows or w, LAT, SLA, now_ns, rng)[0].target for _ in range(n)
    )


def test_weights_converge_95_5_within_one_point() -> None:
    counts = first_counts(route("weight", rt("fast", 95), rt("slow", 5)), 10_000)
    assert abs(counts["fast"] / 10_000 - 0.95) <= 0.01
    assert abs(counts["slow"] / 10_000 - 0.05) <= 0.01


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=50), min_size=2, max_size=4), st.integers(0, 2**32))
def test_weights_converge_for_any_weights(weights: list[int], seed: int) -> None:
    r = route("weight", *(rt(f"t{i}", w) for i, w in enumerate(weights)))
    n = 4000
    counts = first_counts(r, n, seed=seed)
    total = sum(weights)
    for i, w in enumerate(weights):
        # 5 standard deviations of a binomial share: fails only if the split is wrong
        p = w / total
        assert abs(counts[f"t{i}"] / n - p) <= 5 * (p * (1 - p) / n) ** 0.5 + 1e-9


def test_weight_order_lists_every_healthy_fallback_once() -> None:
    r = route("weight", rt("a", 60), rt("b", 30), rt("c", 10, fallback_candidate=False))
    h, w = fresh("a", "b", "c")
    rng = random.Random(1)
    for _ in range(200):
        order = [t.target for t in target_order(r, {}, h, w, LAT, SLA, 0, rng)]
        assert len(order) == len(set(order))
        assert "c" not in order[1:]  # never a fallback, only a first choice
        assert set(order) >= {"a", "b"}


def test_metadata_match_filters_targets() -> None:
    r = route("weight", rt("summ", 95, match={"task": "summarize"}), rt("any", 5))
    assert set(first_counts(r, 300, meta={"task": "chat"})) == {"any"}
    assert set(first_counts(r, 300, meta={})) == {"any"}
    assert set(first_counts(r, 300, meta={"task": "summarize"})) == {"summ", "any"}
    only = route("weight", rt("summ", 1, match={"task": "summarize"}))
    h, w = fresh("summ")
    assert target_order(only, {"task": "x"}, h, w, LAT, SLA, 0, random.Random(0)) == []


def test_priority_lowest_value_first_then_next() -> None:
    r = route("priority", rt("b", priority=1), rt("a", priority=0), rt("c", priority=2))
    h, w = fresh("a", "b", "c")
    order = [t.target for t in target_order(r, {}, h, w, LAT, SLA, 0, random.Random(0))]
    assert order == ["a", "b", "c"]
    # a is cooled down: b leads
    record_failure(h["a"], 0, allowed=0, cooldown_ns=60 * S)
    assert [t.target for t in target_order(r, {}, h, w, LAT, SLA, 1, random.Random(0))] == ["b", "c"]


def test_sla_cutoff_moves_slow_target_to_the_end() -> None:
    r = route("priority", rt("a", priority=0, sla_ms=40), rt("b", priority=1))
    h, w = fresh("a", "b")
    now = 1000 * S

    def order(at: int) -> list[str]:
        return [t.target for t in target_order(r, {}, h, w, LAT, SLA, at, random.Random(0))]

    w["a"].add(now, 100.0)
    w["a"].add(now + 1, 100.0)
    assert order(now + 2) == ["a", "b"]  # two samples are not enough
    w["a"].add(now + 2, 100.0)
    assert order(now + 3) == ["b", "a"]  # three samples, mean 100 > 40
    # the breach ages out of the 3-minute window
    assert order(now + 181 * S) == ["a", "b"]
    # only the last 10 samples count: 10 fast ones hide older slow ones
    for i in range(10):
        w["a"].add(now + 200 * S + i, 10.0)
    assert order(now + 201 * S) == ["a", "b"]


def test_latency_routing_follows_the_faster_target_and_back() -> None:
    r = route("latency", rt("x"), rt("y"))
    h, w = fresh("x", "y")
    rng = random.Random(3)
    speed = {"x": 5.0, "y": 20.0}
    now = 0
    picks: list[str] = []
    for i in range(2000):
        now += 100_000_000  # 0.1 s between requests: the 100-request window is the binding one
        if i == 1000:
            speed = {"x": 20.0, "y": 5.0}
        target = target_order(r, {}, h, w, LAT, SLA, now, rng)[0].target
        w[target].add(now, speed[target])
        picks.append(target)
    before = Counter(picks[800:1000])
    after = Counter(picks[1800:2000])
    assert before["x"] / 200 > 0.85
    assert after["y"] / 200 > 0.85


def test_latency_band_shares_traffic_between_near_equals() -> None:
    r = route("latency", rt("x"), rt("y"))
    h, w = fresh("x", "y")
    for i in range(50):
        w["x"].add(i, 10.0)
        w["y"].add(i, 11.5)  # within 1.2x of x
    counts = first_counts(r, 2000, now_ns=100, health=h, windows=w)
    assert 0.4 < counts["x"] / 2000 < 0.6


def test_latency_learning_targets_get_traffic() -> None:
    r = route("latency", rt("known"), rt("new"))
    h, w = fresh("known", "new")
    for i in range(50):
        w["known"].add(i, 1.0)
    counts = first_counts(r, 1000, now_ns=100, health=h, windows=w)
    assert counts["new"] > 300


def test_all_unhealthy_tries_the_least_recently_failed() -> None:
    r = route("weight", rt("a"), rt("b"), rt("c"))
    h, w = fresh("a", "b", "c")
    record_failure(h["b"], 1 * S, allowed=0, cooldown_ns=300 * S)
    record_failure(h["a"], 2 * S, allowed=0, cooldown_ns=300 * S)
    record_failure(h["c"], 3 * S, allowed=0, cooldown_ns=300 * S)
    assert [t.target for t in target_order(r, {}, h, w, LAT, SLA, 4 * S, random.Random(0))] == ["b"]


def test_failures_over_the_allowance_within_a_minute_cool_down() -> None:
    h = TargetHealth()
    for i in range(3):
        assert not record_failure(h, i * S, allowed=3, cooldown_ns=300 * S)
    assert is_healthy(h, 3 * S)
    assert record_failure(h, 3 * S, allowed=3, cooldown_ns=300 * S)  # the 4th within a minute
    assert not is_healthy(h, 4 * S)
    assert is_healthy(h, 303 * S)  # back by itself after the cooldown


def test_failures_spread_over_minutes_do_not_cool_down() -> None:
    h = TargetHealth()
    for i in range(20):
        assert not record_failure(h, i * 21 * S, allowed=3, cooldown_ns=300 * S)
    assert is_healthy(h, 500 * S)


def test_probation_after_cooldown() -> None:
    h = TargetHealth()
    record_failure(h, 0, allowed=0, cooldown_ns=10 * S)
    assert not is_healthy(h, 5 * S)
    # a failure of a last-resort attempt during the cooldown does not extend it
    assert not record_failure(h, 6 * S, allowed=0, cooldown_ns=10 * S)
    assert is_healthy(h, 10 * S)
    # first failure after returning cools it down again at once, even with an allowance
    assert record_failure(h, 11 * S, allowed=5, cooldown_ns=10 * S)
    assert not is_healthy(h, 12 * S)
    # a success after the cooldown clears probation: the allowance applies again
    record_success(h, 22 * S)
    for i in range(5):
        assert not record_failure(h, 23 * S + i, allowed=5, cooldown_ns=10 * S)
    assert h.cooldowns == 2
