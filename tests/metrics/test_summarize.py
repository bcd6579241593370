"""The pure summary: per-stage results, SLO objectives, stalls, and the plan's open/closed decision,
checked against figures computed by hand from the samples."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hdrh.histogram import HdrHistogram

from loadbench.metrics import histogram as hg
from loadbench.metrics.records import Load, SummaryTarget
from loadbench.metrics.sample import Sample
from loadbench.metrics.slo import SloSpec
from loadbench.metrics.summarize import PlanFacts, RunFacts, RunWindow, summarize
from loadbench.metrics.timing import count_stalls

S_NS = 1_000_000_000
START_S = 1_000.0


@dataclass(frozen=True, slots=True)
class Interval:
    tag: str
    start_s: float
    length_s: float
    hist: HdrHistogram


def _sample(seq: int, t_s: float, ttft_ms: float, *, phase: str = "measure", outcome: str = "ok",
            stalls: int | None = 0, tokens: int = 100) -> Sample:
    ok = outcome == "ok"
    us = int(ttft_ms * 1000)
    return Sample(seq=seq, worker="w0", type="default", target="default", phase=phase,
                  intended_unix_ns=int((START_S + t_s) * S_NS), outcome=outcome, status=200 if ok else 503,
                  queue_us=0, ttft_us=us if ok else None, service_ttft_us=us if ok else None,
                  e2e_us=us + 500_000 if ok else 1_000, tpot_us=5_000 if ok else None, chunks=tokens if ok else 0,
                  itl_max_us=5_000 if ok else None, stalls=stalls if ok else None,
                  output_tokens=tokens if ok else None, prompt_tokens=10 if ok else None)


def _plan(mode: str = "closed", rate: float = 0.0) -> PlanFacts:
    return PlanFacts(mode=mode, total_s=30.0, warmup_s=10.0, cooldown_s=0.0,
                     stages=(("warmup", 0.0, 10.0), ("peak", 10.0, 20.0), ("2x-peak", 20.0, 30.0)),
                     offered_arrivals=lambda t0, t1: rate * (t1 - t0))


def _facts(slo: dict | None = None, stall_ms: float | None = 250.0) -> RunFacts:
    return RunFacts(run_id="r", name="n", target=SummaryTarget("http://x/v1", "m"), load=Load(),
                    slo=SloSpec.from_json(slo), stall_ms=stall_ms)


def _itl(start_s: float, gap_us: int, n: int) -> Interval:
    h = hg.new_histogram()
    for _ in range(n):
        hg.record(h, gap_us)
    return Interval("itl", start_s, 2.0, h)


def _run() -> list[Sample]:
    samples = [_sample(i, 1.0 + i * 0.5, 40.0, phase="warmup") for i in range(10)]  # warm-up: 40 ms
    samples += [_sample(100 + i, 10.5 + i * 0.5, 50.0, stalls=1 if i < 5 else 0) for i in range(18)]  # peak
    samples += [_sample(200 + i, 20.5 + i * 0.5, 300.0, stalls=2) for i in range(16)]  # surge: slow
    samples += [_sample(300 + i, 21.0 + i, 0.0, outcome="http_error") for i in range(4)]
    return samples


def test_stage_results_follow_the_plan_by_intended_start() -> None:
    intervals = [_itl(12.0, 5_000, 100), _itl(24.0, 40_000, 100)]  # middles at 13 s (peak), 25 s (surge)
    s = summarize(samples=_run(), intervals=intervals, plan=_plan(), window=RunWindow(START_S, START_S + 30.0),
                  facts=_facts({"ttft_ms": {"p95": 100.0}, "error_rate": 0.1}))
    assert [st.label for st in s.stages] == ["warmup", "peak", "2x-peak"]
    warm, peak, surge = s.stages
    assert warm.phase == "warmup" and warm.requests.total == 10
    assert peak.phase == "measure" and (peak.requests.total, peak.requests.ok) == (18, 18)
    assert (surge.requests.total, surge.requests.ok, surge.requests.failed) == (20, 16, 4)
    assert surge.requests.error_rate == pytest.approx(4 / 20)
    assert peak.throughput.requests_per_s == pytest.approx(18 / 10.0)
    assert peak.latency("ttft").p50 == pytest.approx(50.0, rel=1e-3)
    assert surge.latency("ttft").p99 == pytest.approx(300.0, rel=1e-3)
    assert peak.latency("itl").p50 == pytest.approx(5.0, rel=1e-3)
    assert surge.latency("itl").p50 == pytest.approx(40.0, rel=1e-3)
    # the SLO held at the peak and broke in the surge, on both objectives
    assert peak.slo is not None and peak.slo.met
    assert surge.slo is not None and not surge.slo.met
    assert [(o.label, o.passed) for o in surge.slo.objectives] == [("ttft p95 <= 100 ms", False),
                                                                  ("error_rate <= 0.1", False)]
    assert surge.slo.objectives[0].value == pytest.approx(300.0, rel=1e-3)
    # headline: warm-up excluded
    assert s.requests.total == 38 and s.requests.excluded == 10


def test_one_stage_plans_have_no_stage_table() -> None:
    plan = PlanFacts("closed", 30.0, 0.0, 0.0, (("main", 0.0, 30.0),), lambda a, b: 0.0)
    s = summarize(samples=_run(), intervals=[], plan=plan, window=RunWindow(START_S, START_S + 30.0), facts=_facts())
    assert s.stages == ()


def test_slo_objectives_carry_measured_values_and_the_old_reasons() -> None:
    s = summarize(samples=_run(), intervals=[], plan=_plan(), window=RunWindow(START_S, START_S + 30.0),
                  facts=_facts({"ttft_ms": {"p50": 1000.0, "p99.9": 100.0}, "error_rate": 0.01}))
    assert s.slo is not None and not s.slo.met
    by_label = {o.label: o for o in s.slo.objectives}
    assert by_label["ttft p50 <= 1000 ms"].passed
    assert not by_label["ttft p99.9 <= 100 ms"].passed
    assert by_label["error_rate <= 0.01"].value == pytest.approx(4 / 38, abs=1e-6)
    assert s.slo.reasons[0].startswith("ttft_ms.p99.9 = 300.")
    assert s.slo.reasons[1] == f"error_rate = {round(4 / 38, 6):g} > 0.01"
    assert s.slo.limits_ms == {"ttft_ms": 1000.0}


def test_stalls_per_thousand_tokens_and_share_of_streams() -> None:
    s = summarize(samples=_run(), intervals=[], plan=_plan(), window=RunWindow(START_S, START_S + 30.0),
                  facts=_facts({"stalls_per_1k_tokens": 10.0, "stalled_share": 0.5}))
    st = s.stalls
    assert st is not None
    # measured ok streams: 18 at the peak (5 with one stall) and 16 in the surge (two each)
    assert (st.streams, st.stalls, st.streams_stalled, st.output_tokens) == (34, 5 + 32, 21, 3400)
    assert st.per_1k_tokens == pytest.approx(1000 * 37 / 3400, abs=1e-4)
    assert st.stalled_share == pytest.approx(21 / 34, abs=1e-6)
    assert s.slo is not None
    assert [(o.metric, o.passed) for o in s.slo.objectives] == [("stalls_per_1k_tokens", False),
                                                               ("stalled_share", False)]
    peak = s.stages[1].stalls
    assert peak is not None and (peak.stalls, peak.streams_stalled, peak.streams) == (5, 5, 18)


def test_runs_that_did_not_count_stalls_report_none() -> None:
    old = [_sample(i, 11.0 + i * 0.1, 50.0, stalls=None) for i in range(5)]
    s = summarize(samples=old, intervals=[], plan=_plan(), window=RunWindow(START_S, START_S + 30.0),
                  facts=_facts(stall_ms=None))
    assert s.stalls is None


def test_the_plan_decides_open_loop_and_offered_arrivals() -> None:
    samples = _run()
    window = RunWindow(START_S, START_S + 30.0)
    closed = summarize(samples=samples, intervals=[], plan=_plan("closed"), window=window, facts=_facts())
    assert closed.generator.target_rps is None and closed.generator.achieved_rps is None
    opened = summarize(samples=samples, intervals=[], plan=_plan("open", rate=2.0), window=window, facts=_facts())
    assert opened.generator.target_rps == 2.0
    assert opened.generator.achieved_rps == pytest.approx(38 / 20.0, abs=1e-3)
    assert not opened.generator.saturated  # 38 of 40 offered arrivals >= 95%
    starved = summarize(samples=samples, intervals=[], plan=_plan("open", rate=4.0), window=window, facts=_facts())
    assert starved.generator.saturated and "38 arrivals of 80" in starved.generator.reasons[0]


def test_count_stalls_counts_gaps_strictly_over_the_limit() -> None:
    assert count_stalls([10, 250_000, 250_001, 900_000], 250_000) == 2
    assert count_stalls([], 250_000) == 0


def test_stalls_per_target_in_the_breakdown() -> None:
    def on(target: str, seq: int, stalls: int) -> Sample:
        s = _sample(seq, 11.0 + seq * 0.1, 50.0, stalls=stalls)
        s.target = target
        return s

    samples = [on("a", i, 0) for i in range(4)] + [on("b", 10 + i, 3) for i in range(2)]
    intervals = []
    for t in ("a", "b"):
        h = hg.new_histogram()
        hg.record(h, 50_000)
        intervals.append(Interval(f"ttft:target={t}", 10.0, 2.0, h))
    s = summarize(samples=samples, intervals=intervals, plan=_plan(), window=RunWindow(START_S, START_S + 30.0),
                  facts=_facts())
    a, b = s.breakdowns["target"]["a"], s.breakdowns["target"]["b"]
    assert (a.requests, b.requests) == (4, 2)
    assert a.stalls is not None and (a.stalls.stalls, a.stalls.stalled_share) == (0, 0.0)
    assert b.stalls is not None and b.stalls.per_1k_tokens == pytest.approx(1000 * 6 / 200)
