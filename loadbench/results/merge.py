"""Merge several run folders of the same target into one (interleaved multi-target runs).

Rounds ran at different times: their samples are concatenated, their interval histograms and timeline
re-based onto the first round's start (gaps between rounds simply have no intervals), and the
status lists each round's measurement window so throughput is computed over measured time only.
HDR histograms add exactly, so merged percentiles equal those of one histogram of every sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from loadbench.results import run_dir as rd
from loadbench.results.hlog import HlogWriter, read_hlog
from loadbench.results.manifest import Manifest, write_manifest
from loadbench.results.status import Round, RunStatus, Workers, read_status, write_status


def _load_start(src: Path, manifest: dict[str, Any]) -> float:
    status = read_status(src, manifest)
    return status.load_start_unix_s if status.load_start_unix_s is not None else float(manifest["start_unix_s"])


def merge_runs(dst: Path, srcs: list[Path]) -> None:
    if not srcs:
        raise ValueError("nothing to merge")
    dst.mkdir(parents=True, exist_ok=True)
    manifests = [rd.read_json(s / rd.MANIFEST) for s in srcs]
    starts = [_load_start(s, m) for s, m in zip(srcs, manifests, strict=True)]
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
    statuses = [read_status(s, m) for s, m in zip(srcs, manifests, strict=True)]
    write_manifest(dst, Manifest.from_json(manifests[0]))
    write_status(dst, RunStatus(
        state="interrupted" if any(st.interrupted for st in statuses) else statuses[-1].state,
        load_start_unix_s=base, end_unix_s=statuses[-1].end_unix_s, planned_duration_s=None,
        stop_reason=statuses[-1].stop_reason, interrupted=any(st.interrupted for st in statuses),
        workers=Workers(expected=statuses[0].workers.expected,
                        seen=tuple(sorted({w for st in statuses for w in st.workers.seen})),
                        lost=tuple(w for st in statuses for w in st.workers.lost),
                        cpu_s={f"r{k}-{w}": c for k, st in enumerate(statuses) for w, c in st.workers.cpu_s.items()}),
        rounds=tuple(Round(start, st.end_unix_s, st.planned_duration_s)
                     for start, st in zip(starts, statuses, strict=True))))
