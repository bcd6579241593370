"""The SLO as data: read from the profile's stored slo: block, judged objective by objective, and the
per-request goodput rule (the loosest limit of each metric)."""

from __future__ import annotations

import pytest

from loadbench.config import Slo
from loadbench.metrics.records import LatencyStats, Load, SummaryTarget
from loadbench.metrics.sample import Sample
from loadbench.metrics.slo import SloSpec, request_is_good
from loadbench.metrics.summarize import PlanFacts, RunFacts, RunWindow, summarize

# stored as the manifest stores it: the validated profile's model_dump
SPEC = SloSpec.from_json(Slo(ttft_ms={"p50": 200, "p95": 500}, tpot_ms={"p95": 50}, error_rate=0.01).model_dump())


def _lookup(stats: dict[str, LatencyStats]):  # type: ignore[no-untyped-def]
    return lambda metric: stats.get(metric, LatencyStats())


def test_slo_met_and_reasons() -> None:
    assert SPEC is not None
    good = SPEC.judge(_lookup({"ttft": LatencyStats(count=9, p50=150, p95=480), "tpot": LatencyStats(count=9, p95=20)}),
                      {"error_rate": 0.0})
    assert (good.met, good.reasons) == (True, ())
    bad = SPEC.judge(_lookup({"ttft": LatencyStats(count=9, p50=150, p95=520)}), {"error_rate": 0.05})
    assert not bad.met
    assert list(bad.reasons) == ["ttft_ms.p95 = 520 > 500", "tpot_ms.p95: no data", "error_rate = 0.05 > 0.01"]
    assert [(o.label, o.value, o.passed) for o in bad.objectives] == [
        ("ttft p50 <= 200 ms", 150.0, True), ("ttft p95 <= 500 ms", 520.0, False),
        ("tpot p95 <= 50 ms", None, False), ("error_rate <= 0.01", 0.05, False)]
    assert SPEC.text() == "ttft p50 <= 200 ms, ttft p95 <= 500 ms, tpot p95 <= 50 ms, error_rate <= 0.01"


def test_request_goodput_uses_the_loosest_limit() -> None:
    assert SPEC is not None
    limits = SPEC.request_limits_ms()
    assert limits == {"ttft_ms": 500, "tpot_ms": 50}
    assert request_is_good(limits, {"ttft_ms": 499, "tpot_ms": 50, "e2e_ms": 99999})
    assert not request_is_good(limits, {"ttft_ms": 501, "tpot_ms": 10})
    assert request_is_good(limits, {"ttft_ms": 100, "tpot_ms": None})  # one output token: no tpot


def test_failed_requests_never_count_as_goodput() -> None:
    def sample(seq: int, outcome: str) -> Sample:
        return Sample(seq=seq, worker="w", type="default", target="default", phase="measure",
                      intended_unix_ns=10**9 * 1001, outcome=outcome, status=200, ttft_us=1_000 if outcome == "ok"
                      else None, e2e_us=2_000)

    s = summarize(samples=[sample(1, "ok"), sample(2, "timeout")], intervals=[],
                  plan=PlanFacts("closed", 10.0, 0.0, 0.0, (("main", 0.0, 10.0),), lambda a, b: 0.0),
                  window=RunWindow(1000.0, 1010.0),
                  facts=RunFacts("r", "n", SummaryTarget(), Load(), slo=SloSpec.from_json({"ttft_ms": {"p99": 5.0}})))
    assert s.throughput.goodput_rps == pytest.approx(1 / 10.0)


def test_no_slo_and_unknown_keys() -> None:
    assert SloSpec.from_json(None) is None and SloSpec.from_json({"ttft_ms": None}) is None
    spec = SloSpec.from_json({"stalled_share": 0.1, "ttft_ms": {"p99.9": 9}})
    assert spec is not None and spec.text() == "ttft p99.9 <= 9 ms, stalled_share <= 0.1"
