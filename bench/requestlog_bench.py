"""What the request log costs the gateway: streamed requests per CPU-second with the log on and off.

Two gateways over one mock (TTFT 50 ms, ITL 5 ms, 64 tokens), both pinned to CPU 1, identical but
for ``request_log:``; the mock and this generator on CPU 0. Rounds alternate which gateway goes first
(drifting load from other processes hits both alike); the verdict compares the medians. The bar:
with the log on, at least 90% of the requests per CPU-second of the log off.

    .venv/bin/python -m bench.requestlog_bench [--seconds 6] [--rounds 3] [--concurrency 160]
Writes bench/out/requestlog.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
from pathlib import Path

import psutil

from bench.gateway_bench import closed_loop, cost_row, measure
from loadbench.procs import ServerProcess, start_server

OUT = Path(__file__).resolve().parent / "out" / "requestlog.json"
BAR_RATIO = 0.90


MOCK_ARGS = ("--port", "0", "--ttft-ms", "50", "--itl-ms", "5", "--output-tokens", "64")


def pinned_gateway(folder: Path, name: str, targets: dict[str, ServerProcess], extra: str = "",
                   vm_extra: str = "") -> ServerProcess:
    """A gateway on CPU 1 with virtual model ``bench`` on the first target (``vm_extra``: its further
    lines, ``extra``: top-level YAML)."""
    text = "targets:\n" + "".join(f"  - {{name: {t}, url: {s.base_url}, model: mock-model, max_connections: 1024}}\n"
                                   for t, s in targets.items())
    text += f"virtual_models:\n  - name: bench\n    targets: [{{target: {next(iter(targets))}}}]\n{vm_extra}{extra}"
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return start_server(["gateway", "--config", str(path), "--port", "0"], cpu=1)


def _gateway(mock: ServerProcess, folder: Path, logged: bool) -> ServerProcess:
    extra = f"request_log: {{path: {folder / 'gateway.db'}}}\n" if logged else ""
    return pinned_gateway(folder, "logged" if logged else "plain", {"mock": mock}, extra)


def write_result(path: Path, out: dict[str, object], detail: str) -> int:
    """Write the bench's JSON, print it without its ``detail`` list, and exit 0 when it passes."""
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != detail}))
    return 0 if out["pass"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=160)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {0})
    folder = Path(tempfile.mkdtemp(prefix="logbench-"))
    mock = start_server(["mock", *MOCK_ARGS], cpu=0)
    servers = [("log_off", _gateway(mock, folder, False)), ("log_on", _gateway(mock, folder, True))]
    rows: list[dict[str, object]] = []
    try:
        for i in range(args.rounds):
            for name, server in servers[i % 2:] + servers[:i % 2]:
                proc = psutil.Process(server.proc.pid)
                asyncio.run(closed_loop(server.url, True, 16, 0.5, 200))  # warm-up
                tally, server_cpu, gen_cpu, wall = measure(
                    proc, lambda u=server.url: closed_loop(u, True, args.concurrency, args.seconds, 20_000))
                rows.append(cost_row(name, True, tally, server_cpu, gen_cpu, wall))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        for _, server in servers:
            server.stop()
        mock.stop()
    median = {name: statistics.median(float(str(r["req_per_cpu_s"] or 0)) for r in rows if r["server"] == name)
              for name, _ in servers}
    logged = sqlite3.connect(folder / "gateway.db").execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    served = sum(int(r["completed"]) for r in rows if r["server"] == "log_on")  # type: ignore[call-overload]
    ratio = median["log_on"] / median["log_off"] if median["log_off"] else 0.0
    out = {"rows": rows, "median_req_per_cpu_s": median, "ratio": round(ratio, 3), "bar_ratio": BAR_RATIO,
           "rows_logged": logged, "requests_served_with_log": served, "pass": ratio >= BAR_RATIO}
    return write_result(OUT, out, "rows")


if __name__ == "__main__":
    raise SystemExit(main())
