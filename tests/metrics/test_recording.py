"""Interval recording -> master collector -> hlog/timeline/samples -> summary, without Locust."""

from __future__ import annotations

import io
import random
import re
import time
from pathlib import Path

from hdrh.log import HistogramLogReader

from loadbench.metrics import histogram as hg
from loadbench.metrics.recorder import IntervalRecorder
from loadbench.metrics.sample import Sample
from loadbench.report.summary_text import render_markdown
from loadbench.results import run_dir as rd
from loadbench.results.collector import Collector
from loadbench.results.hlog import HlogWriter, merged_by_tag, read_hlog
from loadbench.results.manifest import Manifest, write_manifest
from loadbench.results.status import RunStatus, write_status
from loadbench.results.summary_io import build_summary

S = 1_000_000_000


def _sample(seq: int, ttft_us: int, outcome: str = "ok", phase: str = "measure", typ: str = "default") -> Sample:
    ok = outcome == "ok"
    return Sample(seq=seq, worker="w0", type=typ, target="default", phase=phase, intended_unix_ns=0,
                  outcome=outcome, status=200 if ok else 503, queue_us=0, ttft_us=ttft_us if ok else None,
                  service_ttft_us=ttft_us if ok else None, e2e_us=ttft_us + 630_000 if ok else 1_000,
                  tpot_us=10_000 if ok else None, chunks=64 if ok else 0, prompt_tokens=128 if ok else None,
                  output_tokens=64 if ok else None, prompt_tokens_requested=128, output_tokens_requested=64)


def test_failures_and_warmup_stay_out_of_latency_histograms() -> None:
    rec = IntervalRecorder(start_unix_ns=0, interval_ns=2 * S)
    rec.record(_sample(1, 50_000), S, [10_000] * 63)
    rec.record(_sample(2, 0, outcome="http_error"), S, [])
    rec.record(_sample(3, 90_000, phase="warmup"), S, [10_000] * 63)
    wire = rec.drain()
    assert list(wire) == [0]
    part = wire[0]
    assert part["counts"]["requests"] == 3
    assert part["counts"]["ok"] == 2 and part["counts"]["failed"] == 1 and part["counts"]["excluded"] == 1
    ttft = hg.new_histogram()
    hg.add_sparse(ttft, part["hists"]["ttft"])
    assert ttft.get_total_count() == 1 and ttft.get_max_value() < 50_100
    assert sum(part["hists"]["itl"][1]) == 63
    assert rec.drain() == {}  # drained parts are gone


def test_interrupted_requests_are_counted_apart_not_as_failures() -> None:
    # a user stopped while its request was in flight: the target gave no answer, so the timeline must
    # not call it a failure
    rec = IntervalRecorder(start_unix_ns=0, interval_ns=2 * S)
    rec.record(_sample(1, 50_000), S, [10_000] * 63)
    rec.record(_sample(2, 0, outcome="interrupted"), S, [])
    part = rec.drain()[0]
    assert part["counts"]["requests"] == 2 and part["counts"]["ok"] == 1
    assert part["counts"]["failed"] == 0 and part["outcomes"]["interrupted"] == 1


def test_breakdown_tags_only_for_non_default_dimensions() -> None:
    rec = IntervalRecorder(start_unix_ns=0, interval_ns=S)
    rec.record(_sample(1, 50_000, typ="short-chat"), 0, [])
    tags = set(rec.drain()[0]["hists"])
    assert "ttft:type=short-chat" in tags and "ttft" in tags
    assert not any(":target=" in t for t in tags)


def test_hlog_is_readable_by_the_standard_reader(tmp_path: Path) -> None:
    path = tmp_path / "h.hlog"
    h = hg.new_histogram()
    for v in (1_000, 2_000, 3_000):
        hg.record(h, v)
    with path.open("w") as f:
        w = HlogWriter(f, start_unix_s=1_700_000_000.0)
        w.write("ttft", 0.0, 2.0, h)
        w.write("itl", 2.0, 2.0, h)
    reader = HistogramLogReader(str(path), hg.new_histogram())
    first = reader.get_next_interval_histogram()
    second = reader.get_next_interval_histogram()
    assert first.get_tag() == "ttft" and first.get_total_count() == 3
    assert second.get_tag() == "itl"
    start, intervals = read_hlog(path)
    assert start == 1_700_000_000.0 and [i.start_s for i in intervals] == [0.0, 2.0]


def _new_run(tmp_path: Path, profile: dict | None = None) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    write_manifest(run, Manifest(run_id="r1", name=None, command=(), target={"url": "http://x/v1", "model": "m"},
                                 profile=profile or {"duration_s": 10.0}, scenario={}, start_unix_s=0.0))
    write_status(run, RunStatus(state="finished", load_start_unix_s=100.0, end_unix_s=110.0))
    return run


def test_collector_merges_workers_exactly_and_summary_matches(tmp_path: Path) -> None:
    run = _new_run(tmp_path)
    start_ns = 100 * S
    rng = random.Random(7)
    workers = [IntervalRecorder(start_ns, 2 * S) for _ in range(3)]
    whole = hg.new_histogram()
    samples = []
    for seq in range(600):
        ttft = rng.randint(40_000, 90_000)
        s = _sample(seq, ttft)
        samples.append(s)
        hg.record(whole, ttft)
        workers[seq % 3].record(s, start_ns + rng.randint(0, 10 * S - 1), [])
    coll = Collector(run, start_ns, 2.0)
    for i, w in enumerate(workers):
        # ship in two reports each, as a worker would every second
        coll.add({"worker": f"w{i}", "samples": [s.to_json() for s in samples[i::3]][:100], "parts": {
            str(k): v for k, v in w.drain().items()}})
        coll.add({"worker": f"w{i}", "samples": [s.to_json() for s in samples[i::3]][100:]})
    coll.flush_ready(now_unix_ns=start_ns + 5 * S)  # intervals 0 (ends 2 s + grace) are ready
    coll.close()
    merged = merged_by_tag(run / rd.HLOG)["ttft"]
    assert hg.stats_ms(merged) == hg.stats_ms(whole)
    timeline = list(rd.iter_timeline(run))
    assert [t["t_start_s"] for t in timeline] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert sum(t["requests"] for t in timeline) == 600
    record = build_summary(run)
    summary = record.to_json()
    assert summary["schema"] == "loadbench.summary/1"
    assert summary["requests"]["total"] == 600 and summary["requests"]["ok"] == 600
    assert summary["metrics"]["ttft_ms"] == hg.stats_ms(whole)
    assert summary["throughput"]["requests_per_s"] == 60.0
    assert summary["tokens"]["source"] == "usage" and summary["tokens"]["output_mean"] == 64
    assert re.search(r"^\| ttft +\|", render_markdown(record), re.MULTILINE)


def test_summary_counts_outcomes_and_excludes_warmup(tmp_path: Path) -> None:
    run = _new_run(tmp_path, {"duration_s": 10.0, "warmup_s": 2.0})
    lines = [_sample(1, 50_000), _sample(2, 0, outcome="timeout"), _sample(3, 60_000, phase="warmup")]
    (run / rd.SAMPLES).write_bytes(b"".join(s.to_json() + b"\n" for s in lines) + b'{"torn')
    summary = build_summary(run).to_json()
    r = summary["requests"]
    assert (r["total"], r["ok"], r["failed"], r["excluded"]) == (2, 1, 1, 1)
    assert r["by_outcome"] == {"ok": 1, "timeout": 1}
    assert r["error_rate"] == 0.5
    assert summary["window"]["measure_s"] == 8.0
    # no hlog: latencies rebuilt from samples, and the summary says so
    assert summary["metrics"]["ttft_ms"]["count"] == 1
    assert any("rebuilt from samples" in w for w in summary["warnings"])


def test_hlog_writer_rejects_bad_tags() -> None:
    w = HlogWriter(io.StringIO(), time.time())
    try:
        w.write("bad tag", 0, 1, hg.new_histogram())
    except ValueError:
        return
    raise AssertionError("a tag with a space must be rejected")


def test_auto_workers_one_per_core_capped_by_the_load() -> None:
    from loadbench.config import profile_from_dict
    from loadbench.run import auto_workers

    assert auto_workers(profile_from_dict({"users": 20}), cpus=8) == 1
    assert auto_workers(profile_from_dict({"users": 600}), cpus=8) == 3
    assert auto_workers(profile_from_dict({"users": 6000}), cpus=2) == 2
    stages = {"stages": [{"duration_s": 5, "users": 10}, {"duration_s": 5, "users": 700}]}
    assert auto_workers(profile_from_dict(stages), cpus=8) == 3
    assert auto_workers(profile_from_dict({"arrival": {"kind": "poisson", "rps": 500}, "duration_s": 5}),
                        cpus=8) == 3
