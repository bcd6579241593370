"""Write synthetic run folders exactly per docs/results-format.md, with known values.

Used by the report / compare / gate tests so they do not need a real Locust run. Every latency is
drawn from a seeded RNG around a given centre; with ``jitter=0`` every value equals the centre, so
tests can assert exact percentiles (within the histogram's 0.1% precision).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from loadbench.metrics.histogram import PERCENTILES, new_histogram
from loadbench.report.distribution import Dist, bucket_values_us, merge_dists

_BASE_UNIX_S = 1_764_240_000.0
_METRICS = ("ttft", "itl", "tpot", "e2e", "queue", "service_ttft")


@dataclass(slots=True)
class RunSpec:
    name: str = "demo"
    ttft_ms: float = 50.0
    itl_ms: float = 10.0
    output_tokens: int = 16
    prompt_tokens: int = 128
    jitter: float = 0.05  # relative stdev of every latency (0 = all values equal the centre)
    requests_per_interval: int = 20
    intervals: int = 10  # measure intervals
    warmup_intervals: int = 1
    interval_s: float = 2.0
    users: int = 10
    seed: int = 0
    targets: Sequence[str] = ("default",)
    target_ttft_ms: Mapping[str, float] = field(default_factory=dict)  # per-target centre override
    failed_per_interval: int = 0
    schema: str = "loadbench.summary/1"
    saturated: bool = False
    client_delay_ms: float = 0.8  # the bound of docs/generator.md; > 5 ms is beyond the promise
    tokens_source: str = "usage"
    stages: int = 1  # consecutive stages of equal length over the intervals
    drift_per_interval: float = 0.0  # relative change of every latency per interval (a slow drift)


def stats_ms(hists: list[HdrHistogram]) -> dict[str, Any]:
    """The summary's per-metric figures (keys as ``loadbench.metrics.histogram.stats_ms``), computed with
    numpy: hdrh's own mean/stdev walk every value in Python and take a second per histogram."""
    dist = merge_dists(Dist.from_histogram(h) for h in hists)
    keys = ["mean", "stdev", "min", *[k for k, _ in PERCENTILES], "max"]
    if dist.total == 0:
        return {"count": 0, **{k: None for k in keys}}
    values = bucket_values_us(dist.indices)
    mean = float((values * dist.counts).sum() / dist.total)
    var = float((dist.counts * (values - mean) ** 2).sum() / dist.total)
    out: dict[str, Any] = {"count": dist.total, "mean": round(mean / 1000, 4), "stdev": round(var ** 0.5 / 1000, 4),
                           "min": round(float(values[0]) / 1000, 4)}
    for key, p in PERCENTILES:
        out[key] = dist.percentile_ms(p)
    out["max"] = round(float(values[-1]) / 1000, 4)
    return out


def _draw(rng: random.Random, centre_ms: float, jitter: float) -> int:
    if jitter <= 0:
        return round(centre_ms * 1000)
    return max(1, round(rng.lognormvariate(0.0, jitter) * centre_ms * 1000))


def make_run(path: Path, spec: RunSpec | None = None, **overrides: Any) -> Path:
    """Write a run folder at ``path`` (created) and return it."""
    spec = replace(spec or RunSpec(), **overrides)
    rng = random.Random(spec.seed)
    path.mkdir(parents=True, exist_ok=True)
    (path / "plots").mkdir(exist_ok=True)
    n_int = spec.warmup_intervals + spec.intervals
    seq = 0
    samples: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    hlog_lines: list[str] = []
    totals: dict[str, list[HdrHistogram]] = {}
    per_target_requests: dict[str, int] = {}
    by_outcome: dict[str, int] = {}
    multi_target = len(spec.targets) > 1
    for k in range(n_int):
        t0 = k * spec.interval_s
        phase = "warmup" if k < spec.warmup_intervals else "measure"
        drift = 1.0 + spec.drift_per_interval * k
        hists: dict[str, HdrHistogram] = {}

        def rec(tag: str, value_us: int, hists: dict[str, HdrHistogram] = hists) -> None:
            hists.setdefault(tag, new_histogram()).record_value(value_us)

        ok = failed = out_tokens = 0
        for i in range(spec.requests_per_interval + spec.failed_per_interval):
            target = spec.targets[i % len(spec.targets)]
            seq += 1
            fail = i >= spec.requests_per_interval
            centre = spec.target_ttft_ms.get(target, spec.ttft_ms) * drift
            ttft = _draw(rng, centre, spec.jitter)
            gaps = [_draw(rng, spec.itl_ms * drift, spec.jitter) for _ in range(spec.output_tokens - 1)]
            e2e = ttft + sum(gaps)
            tpot = round(sum(gaps) / len(gaps)) if gaps else None
            sample = {
                "seq": seq, "worker": "w0", "type": "default", "target": target, "phase": phase,
                "intended_unix_ns": int((_BASE_UNIX_S + t0) * 1e9) + i * 1000,
                "queue_us": 0, "ttft_us": None if fail else ttft, "service_ttft_us": None if fail else ttft,
                "e2e_us": e2e, "tpot_us": None if fail else tpot, "first_byte_us": 1200,
                "chunks": 0 if fail else spec.output_tokens,
                "itl_mean_us": None if fail or not gaps else round(sum(gaps) / len(gaps)),
                "itl_max_us": None if fail or not gaps else max(gaps),
                "prompt_tokens": spec.prompt_tokens, "output_tokens": 0 if fail else spec.output_tokens,
                "tokens_source": spec.tokens_source, "prompt_tokens_requested": spec.prompt_tokens,
                "output_tokens_requested": spec.output_tokens,
                "outcome": "http_error" if fail else "ok", "status": 500 if fail else 200,
                "error": "HTTP 500" if fail else None, "cache": None, "metadata": {},
            }
            samples.append(sample)
            if fail:
                failed += 1
            else:
                ok += 1
                out_tokens += spec.output_tokens
            if phase != "measure":
                continue
            by_outcome[sample["outcome"]] = by_outcome.get(sample["outcome"], 0) + 1
            if fail:
                continue
            per_target_requests[target] = per_target_requests.get(target, 0) + 1
            values = {"ttft": [ttft], "itl": gaps, "tpot": [tpot] if tpot else [], "e2e": [e2e],
                      "queue": [1], "service_ttft": [ttft]}
            for metric, vals in values.items():
                for v in vals:
                    rec(metric, v)
                    if multi_target:
                        rec(f"{metric}:target={target}", v)
        for tag in sorted(hists):
            h = hists[tag]
            totals.setdefault(tag, []).append(h)
            hlog_lines.append(f"Tag={tag},{t0:.3f},{spec.interval_s:.3f},{h.get_max_value() / 1000:.3f},"
                              + h.encode().decode("ascii"))
        stage = min(spec.stages - 1, k * spec.stages // n_int)
        timeline.append({
            "t_start_s": t0, "t_end_s": t0 + spec.interval_s, "users": spec.users, "target_rps": None,
            "stage": stage, "phase": phase, "requests": ok + failed, "ok": ok, "failed": failed,
            "dropped": 0, "output_tokens": out_tokens, "workers": 1, "cpu_percent_max": 20.0,
            "loop_lag_p99_ms": 0.4, "schedule_lag_p99_ms": None,
        })

    with (path / "samples.jsonl").open("w") as f:
        for s in samples:
            f.write(json.dumps(s) + "\n")
    with (path / "timeline.jsonl").open("w") as f:
        for row in timeline:
            f.write(json.dumps(row) + "\n")
    with (path / "histograms.hlog").open("w") as f:
        f.write("#[Histogram log format version 1.2]\n")
        f.write(f"#[StartTime: {_BASE_UNIX_S:.3f} (seconds since epoch), 2025-11-27 12:00:00]\n")
        f.write('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')
        for line in hlog_lines:
            f.write(line + "\n")

    measure_s = spec.intervals * spec.interval_s
    ok_total = by_outcome.get("ok", 0)
    total = sum(by_outcome.values())
    metrics = {f"{m}_ms": stats_ms(totals.get(m, [])) for m in _METRICS}
    breakdowns: dict[str, Any] = {}
    if multi_target:
        breakdowns["target"] = {
            t: {"requests": per_target_requests.get(t, 0),
                "metrics": {f"{m}_ms": stats_ms(totals.get(f"{m}:target={t}", [])) for m in _METRICS}}
            for t in spec.targets
        }
    summary = {
        "schema": spec.schema, "run_id": f"20251127T120000Z-{spec.name}", "name": spec.name,
        "target": {"url": "http://127.0.0.1:9/v1", "model": "mock"},
        "load": {"mode": "closed", "users": spec.users, "ramp_up_s": 0, "duration_s": n_int * spec.interval_s,
                 "rps": None, "stages": None, "warmup_s": spec.warmup_intervals * spec.interval_s,
                 "cooldown_s": 0, "workers": 1},
        "window": {"start_unix_s": _BASE_UNIX_S + spec.warmup_intervals * spec.interval_s,
                   "end_unix_s": _BASE_UNIX_S + n_int * spec.interval_s, "measure_s": measure_s},
        "requests": {"total": total, "ok": ok_total, "failed": total - ok_total,
                     "excluded": len(samples) - total,
                     "dropped": 0, "by_outcome": by_outcome,
                     "error_rate": (total - ok_total) / total if total else 0.0},
        "throughput": {"requests_per_s": ok_total / measure_s,
                       "output_tokens_per_s": ok_total * spec.output_tokens / measure_s, "goodput_rps": None},
        "tokens": {"source": spec.tokens_source, "prompt_mean": float(spec.prompt_tokens),
                   "output_mean": float(spec.output_tokens),
                   "prompt_requested_mean": float(spec.prompt_tokens),
                   "output_requested_mean": float(spec.output_tokens)},
        "metrics": metrics,
        "breakdowns": breakdowns,
        "generator": {"saturated": spec.saturated, "reasons": ["cpu above 90%"] if spec.saturated else [],
                      "cpu_max": 95.0 if spec.saturated else 20.0, "loop_lag_p99_ms": spec.client_delay_ms / 2,
                      "schedule_lag_p99_ms": None, "client_delay_ms": spec.client_delay_ms,
                      "beyond_promise": spec.client_delay_ms > 5.0},
        "warnings": [],
        "interrupted": False,
    }
    (path / "summary.json").write_text(json.dumps(summary, indent=2))
    (path / "manifest.json").write_text(json.dumps({
        "version": "0.1.0", "command": ["loadbench", "run", "--name", spec.name],
        "start_unix_s": _BASE_UNIX_S, "end_unix_s": _BASE_UNIX_S + n_int * spec.interval_s,
        "interrupted": False,
    }, indent=2))
    return path


def make_multitarget(path: Path, specs: Mapping[str, RunSpec]) -> Path:
    """A multi-target folder: ``targets/<name>/`` each a normal run folder."""
    for name, spec in specs.items():
        make_run(path / "targets" / name, replace(spec, name=name))
    return path


def make_sweep(path: Path, loads: Sequence[int], *, knee: int, slo_ttft_ms: float = 200.0,
               base: RunSpec | None = None) -> Path:
    """A sweep folder: ``steps/<k>-<load>/`` run folders and ``sweep.json``. Latency grows past ``knee``."""
    base = base or RunSpec()
    steps = []
    capacity = None
    for k, load in enumerate(loads):
        over = max(0, load - knee)
        ttft = base.ttft_ms * (1 + over * over / 4)
        rel = f"steps/{k}-{load}"
        run = make_run(path / rel, base, name=f"step{k}", ttft_ms=ttft, users=load,
                       requests_per_interval=min(load, knee) * 2, seed=base.seed + k)
        summary = json.loads((run / "summary.json").read_text())
        slo_met = summary["metrics"]["ttft_ms"]["p99"] <= slo_ttft_ms
        rps = summary["throughput"]["requests_per_s"]
        step = {"index": k, "load": load, "dir": rel, "throughput_rps": rps,
                "output_tokens_per_s": summary["throughput"]["output_tokens_per_s"],
                "goodput_rps": rps if slo_met else rps * 0.3, "slo_met": slo_met, "valid": True}
        steps.append(step)
        if slo_met:
            capacity = {"load": load, "throughput_rps": rps, "goodput_rps": step["goodput_rps"]}
    sweep = {"schema": "loadbench.sweep/1", "name": base.name, "load_unit": "users",
             "slo": {"ttft_ms": {"p99": slo_ttft_ms}}, "steps": steps, "capacity": capacity}
    (path / "sweep.json").write_text(json.dumps(sweep, indent=2))
    return path
