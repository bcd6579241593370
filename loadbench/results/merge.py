"""Merge several run folders of the same target into one (interleaved multi-target runs).

Rounds ran at different times: their samples are concatenated, their interval histograms and timeline
re-based onto the first round's start (gaps between rounds simply have no intervals), and the
manifest lists each round's measurement window so throughput is computed over measured time only.
HDR histograms add exactly, so merged percentiles equal those of one histogram of every sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from loadbench.results import run_dir as rd
from loadbench.results.hlog import HlogWriter, read_hlog


def merge_runs(dst: Path, srcs: list[Path]) -> None:
    if not srcs:
        raise ValueError("nothing to merge")
    dst.mkdir(parents=True, exist_ok=True)
    manifests = [rd.read_json(s / rd.MANIFEST) for s in srcs]
    starts = [float(m.get("load_start_unix_s") or m["start_unix_s"]) for m in manifests]
    base = starts[0]
    with (dst / rd.SAMPLES).open("wb") as out:
        for s in srcs:
            for sample in rd.iter_samples(s):
                out.write(orjson.dumps(sample) + b"\n")
    with (dst / rd.HLOG).open("w") as f:
        writer = HlogWriter(f, base)
        for s, start in zip(srcs, starts, strict=True):
            if (s / rd.HLOG).exists():
                _, intervals = read_hlog(s / rd.HLOG)
                for iv in intervals:
                    writer.write(iv.tag, iv.start_s + (start - base), iv.length_s, iv.hist)
    with (dst / rd.TIMELINE).open("wb") as out:
        for s, start, k in zip(srcs, starts, range(len(srcs)), strict=True):
            for row in rd.iter_timeline(s):
                shift = start - base
                row = {**row, "t_start_s": round(row["t_start_s"] + shift, 3),
                       "t_end_s": round(row["t_end_s"] + shift, 3), "round": k}
                out.write(orjson.dumps(row) + b"\n")
    merged: dict[str, Any] = dict(manifests[0])
    merged.update(
        load_start_unix_s=base, end_unix_s=manifests[-1].get("end_unix_s"), planned_duration_s=None,
        interrupted=any(m.get("interrupted") for m in manifests),
        windows=[{"start_unix_s": st, "end_unix_s": m.get("end_unix_s"),
                  "planned_duration_s": m.get("planned_duration_s")} for st, m in zip(starts, manifests, strict=True)],
        rounds=[str(s.relative_to(dst)) if s.is_relative_to(dst) else str(s) for s in srcs],
        workers={"expected": manifests[0].get("workers", {}).get("expected"),
                 "seen": sorted({w for m in manifests for w in (m.get("workers") or {}).get("seen", [])}),
                 "lost": [w for m in manifests for w in (m.get("workers") or {}).get("lost", [])],
                 "cpu_s": {f"r{k}-{w}": c for k, m in enumerate(manifests)
                           for w, c in ((m.get("workers") or {}).get("cpu_s") or {}).items()}},
    )
    rd.write_json(dst / rd.MANIFEST, merged)
