"""The generator's accuracy envelope: a matrix of cells (streams x ITL x output tokens x placement),
each a real ``loadbench run`` against the mock with the independent reference client
(``bench/reference_client.py``) streaming against the same mock in the same run.

A cell is ``streams:itl_ms:tokens:placement[:ttft_ms]`` (the mock's TTFT, 80 ms unless given).
Placement of the processes (CPU numbers are options; the defaults fit a 2-core machine):
- ``shared``: the CLI, the Locust master and the one worker on ``--worker-cpu``, as a default local run
  on one core;
- ``own``: the worker alone on ``--worker-cpu``, the CLI and master on ``--master-cpu``.
The mock and the reference client run on ``--mock-cpu``.

Per cell: loadbench's P50/P99 TTFT and ITL minus the reference's, worker CPU per request and per chunk
(user+sys CPU of the worker from load start, over every finished request and content chunk), chunks
per second, worker CPU max, loop-lag P99, the mock's late chunks, and the generator verdict.

Chunks are timed by the kernel's receive stamps where the host has them; the same run's TTFT as user
space read it (``generator.user_ttft_*``), the client's measured read delay (user-space time - kernel
time per chunk) and the share of chunks that carried a stamp are reported beside the kernel-stamped
deltas. ``--receive-clock user`` runs the cells with the stamps off (every chunk timed in user space,
as where the host lacks them), for the user-space ITL, which a stamped run does not keep. A cell is
``accurate`` when |dTTFT P99| <= 5 ms and |dITL P99| <= 2 ms (the promise), ``flagged`` when the
verdict says the figures may include client-side delay; ``silent_error`` = neither (must never happen).

    .venv/bin/python -m bench.generator_matrix                 # default matrix, a few minutes
    .venv/bin/python -m bench.generator_matrix --full          # the whole matrix (about 30 minutes)
    .venv/bin/python -m bench.generator_matrix --cells 100:8:64:shared --profile-dir DIR   # py-spy
    .venv/bin/python -m bench.generator_matrix --cells 120:9:96:shared:60                  # the TTFT given
Writes bench/out/generator_matrix.json and the table of its cells, bench/out/generator_matrix.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram

from loadbench.metrics.client_delay import ITL_P99_PROMISE_MS, LAG_TO_DELAY, TTFT_P99_PROMISE_MS
from loadbench.procs import start_server
from loadbench.workers.receive import RECEIVE_CLOCK_ENV

OUT = Path(__file__).resolve().parent / "out" / "generator_matrix.json"
TTFT_MS = 80.0
DEFAULT_CELLS = "100:8:64:shared,100:8:64:own,200:8:64:shared,50:16:256:shared"
FULL = {"streams": (50, 100, 200, 400), "itl_ms": (8.0, 16.0, 32.0), "tokens": (64, 256),
        "placement": ("shared", "own")}
PLACEMENTS = ("shared", "own")


@dataclass(frozen=True, slots=True)
class Cell:
    streams: int
    itl_ms: float
    tokens: int
    placement: str
    ttft_ms: float = TTFT_MS

    @property
    def name(self) -> str:
        ttft = "" if self.ttft_ms == TTFT_MS else f"-ttft{self.ttft_ms:g}"
        return f"{self.streams}s-itl{self.itl_ms:g}-{self.tokens}t-{self.placement}{ttft}"

    @property
    def chunks_per_s(self) -> float:
        return self.streams * 1000.0 / self.itl_ms  # while streaming; TTFT lowers the average


@dataclass(frozen=True, slots=True)
class Cpus:
    mock: int
    worker: int
    master: int


def parse_cells(text: str) -> list[Cell]:
    cells = []
    for item in text.split(","):
        parts = item.split(":")
        if len(parts) not in (4, 5):
            raise SystemExit(f"--cells {item}: write streams:itl_ms:tokens:placement[:ttft_ms]")
        streams, itl, tokens, placement = parts[:4]
        if placement not in PLACEMENTS:
            raise SystemExit(f"--cells {item}: placement must be one of {', '.join(PLACEMENTS)}")
        ttft = float(parts[4]) if len(parts) == 5 else TTFT_MS
        cells.append(Cell(int(streams), float(itl), int(tokens), placement, ttft))
    return cells


def full_cells() -> list[Cell]:
    return [Cell(s, i, t, p) for s, i, t, p in itertools.product(*FULL.values())]


def _role(proc: psutil.Process) -> str | None:
    """'master' or 'worker' for a Locust process of the run (``python -m loadbench.workers ROLE``)."""
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return None
    if "loadbench.workers" in cmd:
        i = cmd.index("loadbench.workers")
        return cmd[i + 1] if i + 1 < len(cmd) else None
    return None


class Placer:
    """Pins the run's master and worker processes as they appear and remembers their pids."""

    def __init__(self, root: subprocess.Popen[bytes], cpus: Cpus, placement: str) -> None:
        self.root = root
        self.cpus = cpus
        self.placement = placement
        self.pids: dict[str, int] = {}
        self.cpu_s: dict[str, float] = {}  # role -> last user+sys seen from outside, start-up included
        self.worker_seen = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        deadline = time.monotonic() + 600
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                children = psutil.Process(self.root.pid).children(recursive=True)
            except psutil.Error:
                return
            for child in children:
                role = _role(child)
                if role is not None and self.pids.get(role) == child.pid:
                    try:
                        t = child.cpu_times()
                        self.cpu_s[role] = t.user + t.system
                    except psutil.Error:
                        pass
                if role is None or role in self.pids:
                    continue
                cpu = self.cpus.worker if role == "worker" or self.placement == "shared" else self.cpus.master
                try:
                    child.cpu_affinity([cpu])
                except psutil.Error:
                    continue
                self.pids[role] = child.pid
                if role == "worker":
                    self.worker_seen.set()
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as resp:  # 127.0.0.1 only
        out: dict[str, Any] = json.loads(resp.read())
        return out


def _reset_stats(base: str) -> None:
    req = urllib.request.Request(base + "/mock/stats", method="DELETE")
    with urllib.request.urlopen(req, timeout=10):  # 127.0.0.1 only
        pass


def _profile(pid: int, role: str, seconds: float, out_dir: Path, cell: Cell, cpu: int) -> subprocess.Popen[bytes]:
    out_dir.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cmd = ["taskset", "-c", str(cpu), spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
           "--rate", "250", "--nonblocking", "--format", "raw", "-o", str(out_dir / f"{cell.name}-{role}.txt")]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_frames(raw: Path, n: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function from a py-spy raw (collapsed stacks) file."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"
                  if " (" in f else f for f in stack.split(";")]
        self_c[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100.0 * c / total, 1)) for f, c in counter.most_common(n)] if total else []
    return {"samples": total, "self_percent": share(self_c), "inclusive_percent": share(incl)}


def loop_lag_ms(hlog: Path, from_s: float) -> dict[str, float | None]:
    """P50/P99/P99.9/max of the workers' loop lag over the intervals starting at ``from_s`` or later,
    read straight from histograms.hlog (the tag ``generator.loop_lag``)."""
    hist = HdrHistogram(1, 3_600_000_000, 3)
    for line in hlog.read_text().splitlines():
        if not line.startswith("Tag=generator.loop_lag,"):
            continue
        _, start_s, _, _, payload = line.split(",", 4)
        if float(start_s) >= from_s:
            hist.decode_and_add(payload.encode("ascii"))
    if not hist.get_total_count():
        return {"p50": None, "p99": None, "p99_9": None, "max": None}
    out: dict[str, float | None] = {k: round(hist.get_value_at_percentile(p) / 1000, 3)
                                    for k, p in (("p50", 50.0), ("p99", 99.0), ("p99_9", 99.9))}
    out["max"] = round(hist.get_max_value() / 1000, 3)
    return out


def _delta(a: float | None, b: float | None) -> float | None:
    return round(a - b, 3) if a is not None and b is not None else None


def run_cell(cell: Cell, cpus: Cpus, seconds: float, warmup_s: float, ref_streams: int, workdir: Path,
             profile_dir: Path | None, receive_clock: str = "kernel") -> dict[str, Any]:
    scenario = workdir / f"{cell.name}.yaml"
    scenario.write_text(f"name: matrix\nprompt_tokens: 64\noutput_tokens: {cell.tokens}\n")
    mock = start_server(["mock", "--port", "0", "--ttft-ms", str(cell.ttft_ms), "--itl-ms", str(cell.itl_ms),
                         "--output-tokens", str(cell.tokens)], cpu=cpus.mock)
    out = workdir / cell.name
    ref_out = workdir / f"{cell.name}-reference.json"
    ramp_s = max(2.0, cell.streams / 100)
    warm = max(warmup_s, ramp_s + 2.0)
    cli_cpu = cpus.worker if cell.placement == "shared" else cpus.master
    cmd = ["taskset", "-c", str(cli_cpu), sys.executable, "-m", "loadbench", "run", "--target", mock.base_url,
           "--scenario", str(scenario), "--users", str(cell.streams), "--ramp-up", str(ramp_s),
           "--warmup", str(warm), "--duration", str(seconds + warm), "--out", str(out), "--name", cell.name]
    spies: list[subprocess.Popen[bytes]] = []
    try:
        _reset_stats(mock.url)
        t0 = time.monotonic()
        env = {**os.environ, RECEIVE_CLOCK_ENV: receive_clock}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        placer = Placer(proc, cpus, cell.placement)
        placer.worker_seen.wait(timeout=120)
        # the reference starts with the worker and measures the same window (after loadbench's warm-up)
        ref = subprocess.Popen(["taskset", "-c", str(cpus.mock), sys.executable, "-m", "bench.reference_client",
                                "--url", mock.base_url, "--streams", str(ref_streams), "--max-tokens",
                                str(cell.tokens), "--warmup", str(warm + 1.0), "--duration", str(seconds + warm),
                                "--out", str(ref_out)], cwd=Path(__file__).resolve().parent.parent)
        if profile_dir is not None:
            time.sleep(warm + 1.0)
            for role, pid in placer.pids.items():
                spies.append(_profile(pid, role, seconds - 2, profile_dir, cell, cpus.mock))
        stdout, _ = proc.communicate(timeout=seconds * 4 + 240)
        wall = time.monotonic() - t0
        ref.wait(timeout=120)
        placer.stop()
        for s in spies:
            s.wait(timeout=60)
        mock_stats = _get_json(mock.url + "/mock/stats")
    finally:
        mock.stop()
    if proc.returncode not in (0, 3):
        raise SystemExit(f"loadbench run failed ({proc.returncode}):\n{stdout.decode(errors='replace')}")
    run = next(p for p in out.iterdir() if p.is_dir())
    row = _row(cell, run, json.loads(ref_out.read_text()), mock_stats, wall, stdout.decode(errors="replace"),
               profile_dir, seconds)
    row["loop_lag_window_ms"] = loop_lag_ms(run / "histograms.hlog", warm)
    for role, cpu_s in placer.cpu_s.items():
        row[f"{role}_cpu_s_seen_outside"] = round(cpu_s, 3)
    if placer.cpu_s.get("master") and row["requests_finished"]:
        row["master_cpu_ms_per_request"] = round(1000 * placer.cpu_s["master"] / row["requests_finished"], 3)
    return row


def _row(cell: Cell, run: Path, ref: dict[str, Any], mock_stats: dict[str, Any], wall_s: float, console: str,
         profile_dir: Path | None, seconds: float) -> dict[str, Any]:
    s = json.loads((run / "summary.json").read_text())
    m = s["metrics"]
    gen = s.get("generator") or {}
    requests = chunks = measured_chunks = 0
    with (run / "samples.jsonl").open() as f:
        for line in f:
            sample = json.loads(line)
            if sample.get("outcome") != "dropped":
                requests += 1
                chunks += int(sample.get("chunks") or 0)
                if sample.get("phase") == "measure":
                    measured_chunks += int(sample.get("chunks") or 0)
    cpu_s = gen.get("cpu_s")
    lb_ttft, lb_itl = m["ttft_ms"], m["itl_ms"]
    d_ttft99 = _delta(lb_ttft["p99"], ref["ttft_ms"]["p99"])
    d_itl99 = _delta(lb_itl["p99"], ref["itl_ms"]["p99"])
    accurate = (d_ttft99 is not None and abs(d_ttft99) <= TTFT_P99_PROMISE_MS
                and d_itl99 is not None and abs(d_itl99) <= ITL_P99_PROMISE_MS)
    # the verdict's flag: saturated, or a client-delay bound beyond the promise (a bound inside it is
    # printed on every run and flags nothing)
    flagged = bool(gen.get("saturated")) or bool(gen.get("beyond_promise"))
    row: dict[str, Any] = {
        **asdict(cell), "cell": cell.name, "mock_ttft_ms": cell.ttft_ms, "wall_s": round(wall_s, 1),
        "requests_ok": s["requests"]["ok"], "chunks_per_s_planned": round(cell.chunks_per_s),
        "chunks_per_s_measured": round(measured_chunks / seconds) if seconds else None,
        "ttft_p50_ms": lb_ttft["p50"], "ttft_p99_ms": lb_ttft["p99"],
        "ref_ttft_p50_ms": ref["ttft_ms"]["p50"], "ref_ttft_p99_ms": ref["ttft_ms"]["p99"],
        "d_ttft_p50_ms": _delta(lb_ttft["p50"], ref["ttft_ms"]["p50"]), "d_ttft_p99_ms": d_ttft99,
        "itl_p50_ms": lb_itl["p50"], "itl_p99_ms": lb_itl["p99"],
        "ref_itl_p50_ms": ref["itl_ms"]["p50"], "ref_itl_p99_ms": ref["itl_ms"]["p99"],
        "d_itl_p50_ms": _delta(lb_itl["p50"], ref["itl_ms"]["p50"]), "d_itl_p99_ms": d_itl99,
        # the same run's chunks as user space read them, beside the kernel-stamped figures above
        "receive_clock": gen.get("receive_clock"), "stamped_share": gen.get("stamped_share"),
        "shared_stamp_share": gen.get("shared_stamp_share"),
        "read_delay_p50_ms": gen.get("read_delay_p50_ms"), "read_delay_p99_ms": gen.get("read_delay_p99_ms"),
        "user_ttft_p50_ms": gen.get("user_ttft_p50_ms"), "user_ttft_p99_ms": gen.get("user_ttft_p99_ms"),
        "d_user_ttft_p50_ms": _delta(gen.get("user_ttft_p50_ms"), ref["ttft_ms"]["p50"]),
        "d_user_ttft_p99_ms": _delta(gen.get("user_ttft_p99_ms"), ref["ttft_ms"]["p99"]),
        "worker_cpu_s": cpu_s, "requests_finished": requests, "chunks_finished": chunks,
        "worker_cpu_ms_per_request": round(1000 * cpu_s / requests, 3) if cpu_s and requests else None,
        "worker_cpu_us_per_chunk": round(1e6 * cpu_s / chunks, 2) if cpu_s and chunks else None,
        "worker_cpu_max_percent": gen.get("cpu_max"), "loop_lag_p99_ms": gen.get("loop_lag_p99_ms"),
        "ref_loop_lag_p99_ms": ref["loop_lag_ms"]["p99"], "ref_requests_ok": ref["ok"],
        "mock_late_chunks": mock_stats.get("late_chunks"), "mock_chunks": mock_stats.get("chunks"),
        "mock_max_lateness_ms": mock_stats.get("max_lateness_ms"),
        "saturated": bool(gen.get("saturated")), "client_delay_ms": gen.get("client_delay_ms"),
        # what metrics.client_delay.LAG_TO_DELAY must cover: the TTFT P99 error per ms of loop-lag P99
        "ttft_error_per_lag": (round(d_ttft99 / gen["loop_lag_p99_ms"], 3)
                               if d_ttft99 is not None and gen.get("loop_lag_p99_ms") else None),
        "itl_error_per_lag": (round(d_itl99 / gen["loop_lag_p99_ms"], 3)
                              if d_itl99 is not None and gen.get("loop_lag_p99_ms") else None),
        "verdict_reasons": gen.get("reasons") or [], "accurate": accurate, "flagged": flagged,
        "silent_error": not accurate and not flagged,
        "console_flag": "beyond the" in console or "generator was saturated" in console,
    }
    if profile_dir is not None:
        raws = sorted(profile_dir.glob(f"{cell.name}-*.txt"))
        row["profile"] = {p.stem.rsplit("-", 1)[-1]: top_frames(p) for p in raws}
    return row


def _ms(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


TABLE_HEAD = ("| streams | TTFT | ITL | tokens | placement | clock | chunks/s | dTTFT P50 | dTTFT P99 | dITL P50 "
              "| dITL P99 | user dTTFT P50 | user dTTFT P99 | read delay P50 / P99 | stamped (shared) "
              "| worker CPU / request | / chunk | loop-lag P99 | verdict |")


def table(rows: list[dict[str, Any]]) -> str:
    """The cells as a Markdown table: loadbench minus the reference client (ms), kernel-stamped figures
    (the run's own) beside the same run's user-space TTFT, the read delay and the stamps' share."""
    lines = [TABLE_HEAD, "|" + "---|" * TABLE_HEAD.count(" | ") + "---|"]
    for r in rows:
        bound = f"bound {r['client_delay_ms']:.1f} ms" if r["client_delay_ms"] is not None else "no bound"
        verdict = ("saturated" if r["saturated"] else f"flagged ({bound})" if r["flagged"]
                   else f"not flagged ({bound})")
        if r["silent_error"]:
            verdict += ", **off the promise, unflagged**"
        elif not r["accurate"]:
            verdict += ", off the promise"
        cpu_req = r["worker_cpu_ms_per_request"]
        cpu_chunk = r["worker_cpu_us_per_chunk"]
        lines.append(
            f"| {r['streams']} | {r['mock_ttft_ms']:g} ms | {r['itl_ms']:g} ms | {r['tokens']} | {r['placement']} "
            f"| {r['receive_clock'] or '–'} | {r['chunks_per_s_measured'] or r['chunks_per_s_planned']:,} "
            f"| {_ms(r['d_ttft_p50_ms'])} | {_ms(r['d_ttft_p99_ms'])} | {_ms(r['d_itl_p50_ms'])} "
            f"| {_ms(r['d_itl_p99_ms'])} | {_ms(r['d_user_ttft_p50_ms'])} | {_ms(r['d_user_ttft_p99_ms'])} "
            f"| {_ms(r['read_delay_p50_ms'], False)} / {_ms(r['read_delay_p99_ms'], False)} "
            f"| {_share(r['stamped_share'])} ({_share(r['shared_stamp_share'])}) "
            f"| {'–' if cpu_req is None else f'{cpu_req:.2f} ms'} "
            f"| {'–' if cpu_chunk is None else f'{cpu_chunk:.1f} us'} "
            f"| {_ms(r['loop_lag_p99_ms'], False)} ms | {verdict} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default=DEFAULT_CELLS, help="streams:itl_ms:tokens:shared|own, comma-separated")
    ap.add_argument("--full", action="store_true", help="the whole matrix: " + json.dumps(FULL))
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per cell")
    ap.add_argument("--warmup", type=float, default=5.0, help="warm-up seconds (at least the ramp-up + 2)")
    ap.add_argument("--reference-streams", type=int, default=20)
    ap.add_argument("--mock-cpu", type=int, default=0)
    ap.add_argument("--worker-cpu", type=int, default=1)
    ap.add_argument("--master-cpu", type=int, default=0, help="where the CLI and master go in 'own' cells")
    ap.add_argument("--profile-dir", type=Path, help="py-spy the worker and master of each cell into DIR")
    ap.add_argument("--receive-clock", choices=("kernel", "user"), default="kernel",
                    help="user: the cells' chunks timed in user space (kernel stamps off)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    cells = full_cells() if args.full else parse_cells(args.cells)
    cpus = Cpus(args.mock_cpu, args.worker_cpu, args.master_cpu)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lb-matrix-") as tmp:
        for cell in cells:
            row = run_cell(cell, cpus, args.seconds, args.warmup, args.reference_streams, Path(tmp),
                           args.profile_dir, args.receive_clock)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "profile"}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"bench": "generator_matrix", "cpus": asdict(cpus), "cores": os.cpu_count(),
           "load_average": os.getloadavg(), "seconds": args.seconds, "reference_streams": args.reference_streams,
           "receive_clock": args.receive_clock, "cells": rows}
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    md = table(rows)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    ratios = [r["ttft_error_per_lag"] for r in rows if r["ttft_error_per_lag"] is not None]
    if ratios:
        print(f"largest TTFT P99 error per ms of loop-lag P99: {max(ratios):.2f} "
              f"(the verdict assumes at most {LAG_TO_DELAY:g})")
    silent = [r["cell"] for r in rows if r["silent_error"]]
    if silent:
        print("cells off the promise and not flagged: " + ", ".join(silent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
