"""What shadowing 10% of the traffic adds to the primary's TTFT (the bar: P50 up by 0.5 ms at most).

Two gateways with the request log on, pinned to CPU 1, identical but for ``shadow: {fraction: 0.1}``
to a second mock; the mocks (TTFT 50 ms, ITL 5 ms, 64 tokens) and this generator on CPU 0. Open loop at
``--rate`` streamed RPS, rounds alternating which gateway goes first; TTFT from each request's intended
start. The figure is the median over rounds of (P50 with shadows − P50 without).

    .venv/bin/python -m bench.shadow_bench [--seconds 6] [--rounds 4] [--rate 200]
Writes bench/out/shadow.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
from pathlib import Path

import psutil

from bench.gateway_bench import FOREIGN, _pct, measure, open_loop
from bench.requestlog_bench import MOCK_ARGS, pinned_gateway, write_result
from loadbench.procs import ServerProcess, start_server

OUT = Path(__file__).resolve().parent / "out" / "shadow.json"
BAR_ADDED_P50_MS = 0.5


def _gateway(primary: ServerProcess, shadow: ServerProcess, folder: Path, name: str, fraction: float) -> ServerProcess:
    vm_extra = f"    shadow: {{targets: [shadow], fraction: {fraction}, max_concurrency: 64}}\n" if fraction else ""
    return pinned_gateway(folder, name, {"mock": primary, "shadow": shadow},
                          f"request_log: {{path: {folder / (name + '.db')}}}\n", vm_extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--fraction", type=float, default=0.1)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {0})
    folder = Path(tempfile.mkdtemp(prefix="shadowbench-"))
    primary = start_server(["mock", *MOCK_ARGS], cpu=0)
    shadow_mock = start_server(["mock", *MOCK_ARGS], cpu=0)
    servers = [("shadow_off", _gateway(primary, shadow_mock, folder, "off", 0.0)),
               ("shadow_on", _gateway(primary, shadow_mock, folder, "on", args.fraction))]
    rounds: list[dict[str, object]] = []
    try:
        for i in range(args.rounds):
            this: dict[str, object] = {}
            for name, server in servers[i % 2:] + servers[:i % 2]:
                proc = psutil.Process(server.proc.pid)
                tally, cpu, _, _ = measure(proc, lambda u=server.url: open_loop(u, args.rate, args.seconds))
                this[name] = {"ok": tally.ok, "errors": tally.errors, "p50_ms": _pct(tally.ttft_ms, 0.5),
                              "p99_ms": _pct(tally.ttft_ms, 0.99),
                              "cpu_ms_per_req": round(cpu * 1000 / max(1, tally.ok), 3),
                              "cpu1_used_by_others": round(FOREIGN[-1], 2)}
            this["added_p50_ms"] = round(float(this["shadow_on"]["p50_ms"])  # type: ignore[index]
                                         - float(this["shadow_off"]["p50_ms"]), 3)  # type: ignore[index]
            rounds.append(this)
            print(json.dumps(this), flush=True)
    finally:
        for _, server in servers:
            server.stop()
        primary.stop()
        shadow_mock.stop()
    conn = sqlite3.connect(folder / "on.db")
    pairs = conn.execute("SELECT COUNT(*) FROM requests WHERE role = 'shadow'").fetchone()[0]
    primaries = conn.execute("SELECT COUNT(*) FROM requests WHERE role = 'primary'").fetchone()[0]
    unpaired = conn.execute("SELECT COUNT(*) FROM requests s WHERE s.role = 'shadow' AND NOT EXISTS "
                            "(SELECT 1 FROM requests p WHERE p.request_id = s.pair_id)").fetchone()[0]
    conn.close()
    added = statistics.median(float(r["added_p50_ms"]) for r in rounds)  # type: ignore[arg-type]
    out = {"rate": args.rate, "fraction": args.fraction, "rounds": rounds, "added_p50_ms_median": added,
           "bar_added_p50_ms": BAR_ADDED_P50_MS, "shadow_rows": pairs, "primary_rows": primaries,
           "shadows_without_primary": unpaired, "pass": added <= BAR_ADDED_P50_MS}
    return write_result(OUT, out, "rounds")


if __name__ == "__main__":
    raise SystemExit(main())
