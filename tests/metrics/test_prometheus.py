"""The live exporter, read back with prometheus-client's own parser: names, buckets and exact quantiles."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from loadbench.launcher import free_port
from loadbench.metrics.live import LiveFeed
from loadbench.metrics.prometheus import LiveState, registry_for, serve
from tests.metrics.test_live import hist_of


def _state() -> LiveState:
    feed = LiveFeed()
    ttft = [10_000] * 5 + [60_000] * 3 + [2_000_000] * 2
    feed.add(0.0, 1.0, {"ttft": hist_of(ttft), "itl": hist_of([10_000] * 40), "ttft:cache=hit-exact": hist_of([5_000])},
             {"ok": 10, "output_tokens": 400, "outcomes": {"ok": 10, "timeout": 2}, "cpu_percent_max": 40.0,
              "loop_lag_p99_ms": 1.5})
    return LiveState(run_id="r1", feed=feed, outcomes={"ok": 10, "timeout": 2, "dropped": 1}, users=20,
                     target_rps=None)


def _families(state: LiveState) -> dict:
    text = generate_latest(registry_for(lambda: state)).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_names_follow_the_conventions() -> None:
    fams = _families(_state())
    for name, fam in fams.items():
        assert name.startswith("loadbench_"), name
        assert "_ms" not in name, name
        if fam.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in fam.samples), name
        if fam.type == "histogram":
            assert name.endswith("_seconds"), name
    assert {"loadbench_requests", "loadbench_errors", "loadbench_ttft_seconds", "loadbench_itl_seconds",
            "loadbench_tpot_seconds", "loadbench_e2e_seconds", "loadbench_users", "loadbench_generator_saturated",
            "loadbench_output_tokens_per_second"} <= set(fams)


def test_counters_by_outcome() -> None:
    fams = _families(_state())
    req = {s.labels["outcome"]: s.value for s in fams["loadbench_requests"].samples}
    err = {s.labels["outcome"]: s.value for s in fams["loadbench_errors"].samples}
    assert req == {"ok": 10, "timeout": 2, "dropped": 1}
    assert err == {"timeout": 2}


def test_histogram_buckets_count_the_hdr_values() -> None:
    fams = _families(_state())
    buckets = {s.labels["le"]: s.value for s in fams["loadbench_ttft_seconds"].samples
               if s.name.endswith("_bucket")}
    assert buckets["0.005"] == 0
    assert buckets["0.01"] == 5  # a value on a bound is counted in it (le)
    assert buckets["0.05"] == 5 and buckets["0.075"] == 8
    assert buckets["1.5"] == 8 and buckets["2"] == 10 and buckets["+Inf"] == 10
    total = next(s.value for s in fams["loadbench_ttft_seconds"].samples if s.name.endswith("_sum"))
    assert total == pytest.approx(5 * 0.01 + 3 * 0.06 + 2 * 2.0, rel=1e-3)


def test_quantile_gauges_are_exact_hdr_quantiles() -> None:
    state = _state()
    fams = _families(state)
    q = {(s.labels["quantile"], s.labels["window"]): s.value for s in fams["loadbench_ttft_quantile_seconds"].samples}
    hist = state.feed.run_hists["ttft"]
    assert q[("0.5", "run")] == hist.get_value_at_percentile(50.0) / 1e6
    assert q[("0.9", "interval")] == pytest.approx(2.0, rel=1e-3)


def test_served_on_localhost_and_empty_before_a_run() -> None:
    port = free_port()
    current: list[LiveState] = []
    serve(port, lambda: current[0] if current else None)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert b"loadbench_" not in resp.read()
    current.append(_state())
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert b'loadbench_run_info{run_id="r1"} 1.0' in resp.read()


def test_the_grafana_dashboard_queries_only_names_that_exist() -> None:
    import json
    import re
    from dataclasses import fields

    from loadbench.cache.cache import CacheStats
    from loadbench.gateway.metrics import _COUNTERS, Metrics
    from tests.conftest import REPO

    state = _state()
    state = LiveState(run_id="r1", feed=state.feed, outcomes=state.outcomes, users=3, target_rps=2.0)
    gw = Metrics()
    for name, (_, labels) in _COUNTERS.items():
        gw.inc(name, *["x"] * len(labels))
    gw.target("t").ttft.record(0.1)
    text = (generate_latest(registry_for(lambda: state)).decode()
            + gw.render({"t": True}, {"c": {f.name: 1 for f in fields(CacheStats)}}))
    exposed = {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}
    dash = json.loads((REPO / "docs/grafana/loadbench.json").read_text())
    queried = {name for panel in dash["panels"] for t in panel.get("targets", [])
               for name in re.findall(r"loadbench_\w+", t["expr"])}
    assert len(queried) >= 15
    assert queried <= exposed, sorted(queried - exposed)


def test_cache_states_are_labels() -> None:
    fams = _families(_state())
    got = {s.labels["cache"]: s.value for s in fams["loadbench_cache_ttft_p50_seconds"].samples}
    assert got == {"hit-exact": pytest.approx(0.005, rel=1e-3)}
