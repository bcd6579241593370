"""Build ``summary.json`` (schema ``loadbench.summary/1``) and ``summary.md`` from a run folder alone.

Latency figures come from the merged HDR histograms in ``histograms.hlog`` (exact across workers and
intervals). Counts, tokens and throughput come from ``samples.jsonl``. Only requests whose intended
start falls in the measurement phase count; warm-up and cool-down requests are reported as excluded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from loadbench.metrics import histogram as hg
from loadbench.metrics.recorder import LOOP_LAG_TAG, METRICS, SCHEDULE_LAG_TAG
from loadbench.results import run_dir as rd
from loadbench.results.hlog import merged_by_tag

SCHEMA = "loadbench.summary/1"
TABLE_METRICS = ("ttft", "itl", "tpot", "e2e", "queue")
_SAMPLE_FIELDS = {"ttft": "ttft_us", "tpot": "tpot_us", "e2e": "e2e_us", "queue": "queue_us",
                  "service_ttft": "service_ttft_us"}


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _hists_from_samples(samples: list[dict[str, Any]]) -> dict[str, HdrHistogram]:
    """Fallback when the histogram log is missing (e.g. the master was killed): no ITL then."""
    out: dict[str, HdrHistogram] = {}
    for s in samples:
        if s.get("outcome") != "ok" or s.get("phase") != "measure":
            continue
        for metric, key in _SAMPLE_FIELDS.items():
            v = s.get(key)
            if isinstance(v, int):
                if metric not in out:
                    out[metric] = hg.new_histogram()
                hg.record(out[metric], v)
    return out


def build_summary(run_dir: Path) -> dict[str, Any]:
    manifest = rd.read_json(run_dir / rd.MANIFEST)
    samples = list(rd.iter_samples(run_dir))
    timeline = list(rd.iter_timeline(run_dir))
    warnings: list[str] = []
    hlog_path = run_dir / rd.HLOG
    hists = merged_by_tag(hlog_path) if hlog_path.exists() else {}
    if not hists and any(s.get("outcome") == "ok" for s in samples):
        hists = _hists_from_samples(samples)
        warnings.append("histograms.hlog is missing or empty: latencies rebuilt from samples.jsonl "
                        "(no ITL)")

    measured = [s for s in samples if s.get("phase") == "measure"]
    excluded = len(samples) - len(measured)
    by_outcome = Counter(s.get("outcome", "unknown") for s in measured)
    ok = [s for s in measured if s.get("outcome") == "ok"]
    dropped = by_outcome.get("dropped", 0)
    failed = len(measured) - len(ok) - dropped
    attempted = len(measured) - dropped

    profile = manifest.get("profile") or {}
    start_s = float(manifest.get("load_start_unix_s") or manifest.get("start_unix_s") or 0.0)
    end_s = manifest.get("end_unix_s")
    if end_s is None and timeline:
        end_s = start_s + float(timeline[-1]["t_end_s"])
    if end_s is None:
        end_s = start_s
    warmup_s = float(profile.get("warmup_s") or 0.0)
    cooldown_s = float(profile.get("cooldown_s") or 0.0)
    duration_s = profile.get("duration_s")
    planned_s = manifest.get("planned_duration_s") or duration_s
    measure_end = float(end_s)
    if planned_s:
        # requests sent inside the window and drained after it count; the window itself does not grow
        measure_end = min(measure_end, start_s + float(planned_s) - cooldown_s)
    measure_s = max(0.0, measure_end - (start_s + warmup_s))
    if manifest.get("windows"):  # merged rounds (interleaved targets): only the measured time counts
        measure_s = sum(_window_s(w, warmup_s, cooldown_s) for w in manifest["windows"])

    out_tokens = [s["output_tokens"] for s in ok if isinstance(s.get("output_tokens"), int)]
    prompt_tokens = [s["prompt_tokens"] for s in ok if isinstance(s.get("prompt_tokens"), int)]
    sources = {s.get("tokens_source") for s in ok}
    token_source = "usage" if sources <= {"usage"} else ("estimated" if sources == {"estimated"} else "mixed")
    if ok and token_source != "usage":
        warnings.append("the target sent no usage for some requests: output token counts are "
                        "estimated from content chunks (one token per chunk)")
    p_req = [s["prompt_tokens_requested"] for s in ok if isinstance(s.get("prompt_tokens_requested"), int)
             and isinstance(s.get("prompt_tokens"), int)]
    p_got = [s["prompt_tokens"] for s in ok if isinstance(s.get("prompt_tokens_requested"), int)
             and isinstance(s.get("prompt_tokens"), int)]
    if p_req and abs(sum(p_got) - sum(p_req)) > 0.05 * sum(p_req):
        warnings.append(f"prompt tokens: requested mean {sum(p_req) / len(p_req):.1f}, the target counted "
                        f"{sum(p_got) / len(p_got):.1f} (more than 5% apart)")
    mismatch = sum(1 for s in ok if isinstance(s.get("output_tokens_requested"), int)
                   and s.get("output_tokens") != s.get("output_tokens_requested"))
    if mismatch:
        warnings.append(f"{mismatch} of {len(ok)} requests returned a different number of output tokens "
                        "than requested (max_tokens)")

    metrics = {f"{m}_ms": hg.stats_ms(hists.get(m)) for m in METRICS}
    breakdowns: dict[str, dict[str, Any]] = defaultdict(dict)
    for tag, hist in sorted(hists.items()):
        if ":" not in tag:
            continue
        metric, dim = tag.split(":", 1)
        dimension, _, value = dim.partition("=")
        entry = breakdowns[dimension].setdefault(value, {"requests": 0, "metrics": {}})
        entry["metrics"][f"{metric}_ms"] = hg.stats_ms(hist)
    for dimension, values in breakdowns.items():
        key = {"type": "type", "target": "target", "cache": "cache"}.get(dimension, dimension)
        counts = Counter(str(s.get(key)) for s in ok)
        for value, entry in values.items():
            entry["requests"] = counts.get(value, 0)

    error_rate = failed / attempted if attempted else 0.0
    if attempted and not ok:
        warnings.append("no request succeeded: check the target URL, model and key")
    elif error_rate > 0:
        warnings.append(f"{failed} of {attempted} measured requests failed ({error_rate:.1%})")
    if dropped:
        warnings.append(f"{dropped} scheduled arrivals were never sent because max_in_flight requests were "
                        "outstanding (see each sample's error)")
    queue = hists.get("queue")
    if queue is not None and queue.get_total_count() and queue.get_value_at_percentile(50.0) > 50_000:
        warnings.append(
            f"client-side queue: half the requests waited over {queue.get_value_at_percentile(50.0) / 1000:.0f} ms "
            "for a free user (max_in_flight) before being sent; ttft and e2e count that wait (coordinated "
            "omission corrected), service_ttft shows the server's own time")
    if manifest.get("interrupted"):
        warnings.append("the run was interrupted: the summary covers what was measured until then")
    lost = (manifest.get("workers") or {}).get("lost") or []
    if lost:
        warnings.append(f"worker(s) lost during the run: {', '.join(map(str, lost))}")

    goodput_rps, slo_info = _goodput(profile.get("slo"), ok, measure_s, hists)
    generator = _generator_verdict(timeline, hists)
    is_open = bool(profile.get("arrival")) or bool((profile.get("peak") or {}).get("rps"))
    if is_open:
        offered = _offered_arrivals(profile, warmup_s, measure_s)
        arrived = len(measured)  # sent (ok or failed) + dropped: every arrival the schedule produced
        generator["target_rps"] = round(offered / measure_s, 3) if measure_s and offered else None
        generator["achieved_rps"] = round(arrived / measure_s, 3) if measure_s else None
        if offered and arrived < 0.95 * offered:
            generator["saturated"] = True
            generator["reasons"].append(f"open loop: {arrived} arrivals of {offered:.0f} scheduled in the window "
                                        "(< 95%): the generator could not keep the schedule")
    cpu_by_worker = (manifest.get("workers") or {}).get("cpu_s") or {}
    generator["cpu_s"] = round(sum(cpu_by_worker.values()), 3) if cpu_by_worker else None
    generator["cpu_ms_per_request"] = (round(1000 * generator["cpu_s"] / len(samples), 4)
                                       if cpu_by_worker and samples else None)
    if generator["saturated"]:
        warnings.append("the load generator was saturated: " + "; ".join(generator["reasons"]))

    load = {
        "mode": "open" if is_open else "closed",
        "users": profile.get("users"),
        "ramp_up_s": profile.get("ramp_up_s"),
        "duration_s": duration_s,
        "rps": (profile.get("arrival") or {}).get("rps"),
        "stages": profile.get("stages"),
        "warmup_s": warmup_s,
        "cooldown_s": cooldown_s,
        "max_requests": profile.get("max_requests"),
        "workers": (manifest.get("workers") or {}).get("expected"),
    }
    summary = {
        "schema": SCHEMA,
        "run_id": manifest.get("run_id"),
        "name": manifest.get("name"),
        "target": {"url": (manifest.get("target") or {}).get("url"),
                   "model": (manifest.get("target") or {}).get("model")},
        "load": load,
        "window": {"start_unix_s": start_s, "end_unix_s": end_s, "measure_s": round(measure_s, 3)},
        "requests": {"total": len(measured), "ok": len(ok), "failed": failed, "dropped": dropped,
                     "excluded": excluded, "by_outcome": dict(sorted(by_outcome.items())),
                     "error_rate": round(error_rate, 6)},
        "throughput": {
            "requests_per_s": round(len(ok) / measure_s, 4) if measure_s else None,
            "output_tokens_per_s": round(sum(out_tokens) / measure_s, 3) if measure_s else None,
            "goodput_rps": goodput_rps,
        },
        "slo": None,
        "tokens": {"source": token_source if ok else None,
                   "prompt_mean": _mean(prompt_tokens), "output_mean": _mean(out_tokens),
                   "prompt_requested_mean": _mean([s["prompt_tokens_requested"] for s in ok
                                                   if isinstance(s.get("prompt_tokens_requested"), int)]),
                   "output_requested_mean": _mean([s["output_tokens_requested"] for s in ok
                                                   if isinstance(s.get("output_tokens_requested"), int)])},
        "metrics": metrics,
        "breakdowns": dict(breakdowns),
        "generator": generator,
        "warnings": warnings,
        "interrupted": bool(manifest.get("interrupted")),
    }
    if slo_info is not None:
        summary["slo"] = {**slo_info, **slo_verdict(summary, profile["slo"])}
    return summary


def _offered_arrivals(profile: dict[str, Any], warmup_s: float, measure_s: float) -> float:
    """Arrivals the schedule offers in the measurement window: the integral of the planned rate."""
    from loadbench.config import profile_from_dict
    from loadbench.workload.arrivals import integrated_rate

    segments = profile_from_dict(profile, source="manifest").rate_segments()
    return integrated_rate(segments, warmup_s + measure_s) - integrated_rate(segments, warmup_s)


def _window_s(w: dict[str, Any], warmup_s: float, cooldown_s: float) -> float:
    start = float(w["start_unix_s"])
    end = float(w.get("end_unix_s") or start)
    if w.get("planned_duration_s"):
        end = min(end, start + float(w["planned_duration_s"]) - cooldown_s)
    return max(0.0, end - (start + warmup_s))


def _goodput(slo_dict: dict[str, Any] | None, ok: list[dict[str, Any]], measure_s: float,
             hists: dict[str, HdrHistogram]) -> tuple[float | None, dict[str, Any] | None]:
    """Requests per second that met every per-request SLO limit, and whether the run met the SLO."""
    if not slo_dict:
        return None, None
    from loadbench.config.profile import Slo
    from loadbench.workload.sweep import request_is_good, request_limits_ms

    slo = Slo.model_validate(slo_dict)
    limits = request_limits_ms(slo)

    def ms(v: Any) -> float | None:
        return v / 1000.0 if isinstance(v, int) else None

    good = sum(1 for s in ok if request_is_good(limits, ok=True, ttft_ms=ms(s.get("ttft_us")),
                                                itl_ms=ms(s.get("itl_max_us")), tpot_ms=ms(s.get("tpot_us")),
                                                e2e_ms=ms(s.get("e2e_us"))))
    return (round(good / measure_s, 4) if measure_s else None), {"limits_ms": limits}


def slo_verdict(summary: dict[str, Any], slo_dict: dict[str, Any]) -> dict[str, Any]:
    """Whether a summary meets an SLO (statistic names as in the SLO: p95, p99.9, mean, max)."""
    from loadbench.config.profile import Slo
    from loadbench.workload.sweep import slo_met

    metrics: dict[str, Any] = {}
    for name, stats in summary["metrics"].items():
        metrics[name] = {k.replace("_", "."): v for k, v in stats.items()} | stats
    metrics["error_rate"] = summary["requests"]["error_rate"]
    met, reasons = slo_met(metrics, Slo.model_validate(slo_dict))
    return {"met": met, "reasons": reasons}


# Saturation thresholds (docs/generator.md): past these, the worker reads responses late enough to
# inflate the latencies it reports by more than the accuracy the tests hold it to.
CPU_HOT_PERCENT = 90.0
LOOP_LAG_P99_MAX_MS = 15.0
SCHEDULE_LAG_P99_MAX_MS = 25.0


def _p99_ms(hist: HdrHistogram | None) -> float | None:
    if hist is None or not hist.get_total_count():
        return None
    return round(hist.get_value_at_percentile(99.0) / 1000.0, 3)


def _generator_verdict(timeline: list[dict[str, Any]], hists: dict[str, HdrHistogram]) -> dict[str, Any]:
    """Was the load generator itself the bottleneck? Judged over the whole run (merged histograms),
    so one noisy interval does not condemn a run, while a sustained problem always shows."""
    cpu = [t["cpu_percent_max"] for t in timeline if isinstance(t.get("cpu_percent_max"), int | float)]
    lag_p99 = _p99_ms(hists.get(LOOP_LAG_TAG))
    sched_p99 = _p99_ms(hists.get(SCHEDULE_LAG_TAG))
    reasons = []
    cpu_max = max(cpu) if cpu else None
    hot = [c for c in cpu if c >= CPU_HOT_PERCENT]
    if cpu and len(hot) >= max(2, len(cpu) // 4):
        reasons.append(f"a worker used >= {CPU_HOT_PERCENT:.0f}% of a core in {len(hot)} of {len(cpu)} "
                       f"intervals (max {cpu_max:.0f}%): add workers (--workers) or lower users per worker")
    if lag_p99 is not None and lag_p99 > LOOP_LAG_P99_MAX_MS:
        reasons.append(f"event-loop lag P99 was {lag_p99:.1f} ms (> {LOOP_LAG_P99_MAX_MS:.0f} ms): the worker "
                       "read responses late; add workers or give the generator an idle core")
    if sched_p99 is not None and sched_p99 > SCHEDULE_LAG_P99_MAX_MS:
        reasons.append(f"open-loop schedule lag P99 was {sched_p99:.1f} ms (> {SCHEDULE_LAG_P99_MAX_MS:.0f} ms): "
                       "arrivals left late; add workers")
    return {"saturated": bool(reasons), "reasons": reasons, "cpu_max": cpu_max,
            "loop_lag_p99_ms": lag_p99, "schedule_lag_p99_ms": sched_p99}


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def render_table(summary: dict[str, Any]) -> str:
    """The percentile table (markdown, also readable in a terminal)."""
    cols = ("count", "p50", "p90", "p95", "p99", "p99_9", "max", "mean")
    lines = ["| metric (ms) | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m in TABLE_METRICS:
        st = summary["metrics"].get(f"{m}_ms") or {}
        lines.append(f"| {m} | " + " | ".join(_fmt(st.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def render_markdown(summary: dict[str, Any]) -> str:
    req = summary["requests"]
    thr = summary["throughput"]
    tok = summary["tokens"]
    parts = [
        f"# loadbench run {summary.get('run_id')}",
        "",
        f"- target: {summary['target']['url']} (model `{summary['target']['model']}`)",
        f"- requests: {req['total']} measured, {req['ok']} ok, {req['failed']} failed, "
        f"{req['dropped']} dropped, {req['excluded']} excluded (warm-up/cool-down); "
        f"error rate {req['error_rate']:.2%}",
        f"- throughput: {_fmt(thr['requests_per_s'])} req/s, {_fmt(thr['output_tokens_per_s'])} output tok/s "
        f"over {summary['window']['measure_s']} s",
        f"- tokens ({tok['source']}): prompt mean {_fmt(tok['prompt_mean'])}, "
        f"output mean {_fmt(tok['output_mean'])}",
        "",
        render_table(summary),
        "",
    ]
    if summary["warnings"]:
        parts += ["## Warnings", "", *[f"- {w}" for w in summary["warnings"]], ""]
    return "\n".join(parts)


def write_summary(run_dir: Path) -> dict[str, Any]:
    summary = build_summary(run_dir)
    rd.write_json(run_dir / rd.SUMMARY, summary)
    (run_dir / rd.SUMMARY_MD).write_text(render_markdown(summary))
    return summary
