"""The gate language: parsing, evaluation, significance, validity."""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.errors import InputError
from loadbench.metrics.records import LatencyStats, Summary
from loadbench.report.gates import evaluate_gates, parse_expr, parse_exprs
from loadbench.report.significance import MIN_TAIL_SAMPLES, Noise, decide, summary_noise
from loadbench.report.stats import Figure
from loadbench.report.validity import check_valid
from loadbench.results.summary_file import read_summary
from tests.report.runfolder_factory import make_run


@pytest.mark.parametrize(("text", "figure", "op", "threshold", "relative"), [
    ("ttft.p95 > +10%", Figure("ttft", "p95"), ">", 0.10, True),
    ("itl.p99 > 25ms", Figure("itl", "p99"), ">", 25.0, False),
    ("error_rate > 1%", Figure("error_rate"), ">", 0.01, False),
    ("error_rate >= 0.05", Figure("error_rate"), ">=", 0.05, False),
    ("throughput.rps < -5%", Figure("throughput.rps"), "<", -0.05, True),
    ("throughput.tokens_per_s <= 1000", Figure("throughput.tokens_per_s"), "<=", 1000.0, False),
    ("e2e.p99.9 > 2s", Figure("e2e", "p99_9"), ">", 2000.0, False),
    ("tpot.mean>500us", Figure("tpot", "mean"), ">", 0.5, False),
    ("ttft_ms.p50 > +2.5%", Figure("ttft", "p50"), ">", 0.025, True),
    ("ttft.p95[target=fast] > 200ms", Figure("ttft", "p95", ("target", "fast")), ">", 200.0, False),
])
def test_parse_valid(text: str, figure: Figure, op: str, threshold: float, relative: bool) -> None:
    e = parse_expr(text)
    assert (e.figure, e.op, e.relative) == (figure, op, relative)
    assert e.threshold == pytest.approx(threshold)


@pytest.mark.parametrize(("text", "says"), [
    ("", "expected"),
    ("ttft > 10ms", "statistic"),
    ("ttft.p95 > 10%", "time unit"),
    ("ttft.p97 > 10ms", "statistic"),
    ("latency.p95 > 10ms", "unknown figure"),
    ("ttft.p95 => 10ms", "expected"),
    ("ttft.p95 > +10ms", "must end in %"),
    ("error_rate > 5ms", "fraction"),
    ("error_rate > 150%", "at most 100%"),
    ("throughput.rps < 5%", "-5%"),
    ("error_rate[target=a] > 1%", "no breakdowns"),
    ("ttft.p95 > 10 parsecs", "expected"),
])
def test_parse_errors_are_clear(text: str, says: str) -> None:
    with pytest.raises(InputError) as info:
        parse_expr(text)
    msg = str(info.value)
    assert says in msg
    assert repr(text) in msg and "Examples" in msg


@given(number=st.decimals(min_value=0, max_value=1000, places=2), sign=st.sampled_from(["+", "-"]),
       op=st.sampled_from([">", ">=", "<", "<="]), spaces=st.sampled_from(["", " ", "  "]))
def test_parse_relative_any_number(number: object, sign: str, op: str, spaces: str) -> None:
    e = parse_expr(f"ttft.p95{spaces}{op}{spaces}{sign}{number}%")
    assert e.relative and e.op == op
    assert e.threshold == pytest.approx(float(str(number)) / 100 * (-1 if sign == "-" else 1))


def _summary(tmp_path: Path, name: str, **kw: object) -> Summary:
    return read_summary(make_run(tmp_path / name, **kw))


def test_absolute_gates(tmp_path: Path) -> None:
    s = _summary(tmp_path, "a", jitter=0.0, ttft_ms=50.0, itl_ms=10.0)
    v = evaluate_gates(parse_exprs(["ttft.p95 > 60ms", "itl.p99 > 9ms", "error_rate > 1%"]), s, None)
    assert [r.status for r in v.results] == ["pass", "fail", "pass"]
    assert not v.passed
    assert v.results[1].significant is None
    assert "itl.p99" in v.results[1].message and "10" in v.results[1].message


def test_relative_gate_needs_significance(tmp_path: Path) -> None:
    base = _summary(tmp_path, "b", jitter=0.05, ttft_ms=50.0, seed=1)
    slower = _summary(tmp_path, "s", jitter=0.05, ttft_ms=60.0, seed=2)
    same = _summary(tmp_path, "c", jitter=0.05, ttft_ms=50.0, seed=3)
    gate = parse_exprs(["ttft.p50 > +10%"])
    v = evaluate_gates(gate, slower, base)
    assert not v.passed and v.results[0].significant is True
    assert v.results[0].delta_rel == pytest.approx(0.2, abs=0.03)
    assert evaluate_gates(gate, same, base).passed
    # a threshold crossed by noise alone does not fail: huge noise, tiny threshold
    noisy = Noise({"ttft.p50": 100.0})
    v = evaluate_gates(parse_exprs(["ttft.p50 > +1%"]), slower, base, run_noise=noisy, baseline_noise=noisy)
    assert v.passed and v.results[0].significant is False and "within noise" in v.results[0].message


def test_relative_gate_without_baseline_is_skipped_and_missing_data_fails(tmp_path: Path) -> None:
    s = _summary(tmp_path, "a")
    v = evaluate_gates(parse_exprs(["ttft.p95 > +10%"]), s, None)
    assert v.results[0].status == "skipped" and v.passed
    s = replace(s, metrics={**s.metrics, "tpot": LatencyStats(count=0, p95=None)})
    v = evaluate_gates(parse_exprs(["tpot.p95 > 100ms"]), s, None)
    assert v.results[0].status == "fail" and "no data" in v.results[0].message


def test_throughput_drop_gate(tmp_path: Path) -> None:
    base = _summary(tmp_path, "b", requests_per_interval=40)
    run = _summary(tmp_path, "r", requests_per_interval=20, seed=5)
    v = evaluate_gates(parse_exprs(["throughput.rps < -5%"]), run, base)
    assert v.results[0].status == "fail"
    v = evaluate_gates(parse_exprs(["throughput.rps < -5%"]), base, run)  # faster is not a failure
    assert v.results[0].status == "pass"


def test_decide() -> None:
    assert decide(110.0, 100.0, 1.0, 1.0).significant
    assert not decide(102.0, 100.0, 1.0, 1.0).significant  # 2 < 3 * sqrt(2)
    assert not decide(100.5, 100.0, 0.0, 0.0).significant  # below the 1% floor
    assert not decide(200.0, 100.0, math.inf, 1.0).significant
    assert not decide(200.0, 100.0, None, None).significant


def test_t_factor_widens_few_intervals() -> None:
    from loadbench.report.significance import t_factor

    assert t_factor(6) == pytest.approx(5.51 / 3)
    assert t_factor(11) == pytest.approx(3.96 / 3)
    assert t_factor(100) == 1.0
    assert math.isinf(t_factor(1))
    assert all(t_factor(k) >= t_factor(k + 1) for k in range(2, 60))


def test_tail_percentiles_need_enough_samples(tmp_path: Path) -> None:
    s = _summary(tmp_path, "a", requests_per_interval=10, intervals=5)  # 50 ttft samples
    noise = summary_noise(s)
    assert math.isinf(noise.se["ttft.p99"])  # 50 * 0.01 < MIN_TAIL_SAMPLES
    assert MIN_TAIL_SAMPLES <= 50 * 0.1 and math.isfinite(noise.se["ttft.p90"])
    # 750 gaps, but from 50 streams: gaps of one stream are not independent, so the effective sample
    # size is 50 and the ITL P99 is not judged either; the P50 is
    assert math.isinf(noise.se["itl.p99"])
    assert math.isfinite(noise.se["itl.p50"])
    assert noise.se["itl.p50"] > summary_noise(replace(s, requests=replace(s.requests, ok=10**6))).se["itl.p50"]


@given(value=st.floats(min_value=0.1, max_value=1e5), se=st.floats(min_value=0, max_value=1e4))
def test_identical_figures_are_never_significant(value: float, se: float) -> None:
    assert not decide(value, value, se, se).significant


def test_validity(tmp_path: Path) -> None:
    assert check_valid(_summary(tmp_path, "ok")) == []
    few = check_valid(_summary(tmp_path, "few", requests_per_interval=2, intervals=5))
    assert len(few) == 1 and "too few samples" in few[0]
    sat = check_valid(_summary(tmp_path, "sat", saturated=True))
    assert len(sat) == 1 and "saturated" in sat[0] and "cpu" in sat[0]
    err = check_valid(_summary(tmp_path, "err", failed_per_interval=10), error_ceiling=0.2)
    assert len(err) == 1 and "error rate 33.3%" in err[0]


@settings(max_examples=25, deadline=None)
@given(text=st.text(max_size=40))
def test_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(InputError):
        parse_expr(text)
