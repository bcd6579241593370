"""The gateway's /metrics follows the same conventions as the run exporter, read with prometheus-client's parser."""

from __future__ import annotations

from dataclasses import fields

from prometheus_client.parser import text_string_to_metric_families

from loadbench.cache.cache import CacheStats
from loadbench.gateway.metrics import _COUNTERS, Metrics


def test_every_family_parses_and_follows_the_conventions() -> None:
    m = Metrics()
    for name, (_, labels) in _COUNTERS.items():
        m.inc(name, *["x"] * len(labels))
    t = m.target("fast")
    t.ttft.record(0.05)
    t.itl.record(0.01)
    t.tpot.record(0.01)
    cache_stats = {f.name: 1 for f in fields(CacheStats)}
    text = m.render({"fast": True}, {"demo": cache_stats})
    fams = list(text_string_to_metric_families(text))
    assert len(fams) == len(_COUNTERS) + 1 + 3 + len(cache_stats)
    for fam in fams:
        assert fam.name.startswith("loadbench_gateway_"), fam.name
        assert not fam.name.endswith(("_ms", "_us", "_milliseconds")), fam.name
        assert fam.samples, fam.name
        if fam.type == "counter":
            assert all(s.name.endswith("_total") for s in fam.samples), fam.name
        if fam.type == "histogram":
            assert fam.name.endswith("_seconds"), fam.name
            assert {s.name for s in fam.samples} == {f"{fam.name}_bucket", f"{fam.name}_sum", f"{fam.name}_count"}
