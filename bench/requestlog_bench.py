"""What the request log costs the gateway: streamed requests per CPU-second with the log on and off.

Two gateways over one mock (TTFT 50 ms, ITL 5 ms, 64 tokens), both pinned to CPU 1, identical but
for ``request_log:``; the mock and this generator on CPU 0. Rounds alternate which gateway goes first
(drifting load from other processes hits both alike); the verdict compares the medians. The bar:
with the log on, at least 90% of the requests per CPU-second of the log off.

    .venv/bin/python -m bench.requestlog_bench [--seconds 6] [--rounds 3] [--concurrency 160]
Writes bench/out/requestlog.json.

``--writer`` measures the log's writer alone, without servers: records shaped as a whole answer's
(usage decoded, no price, no bodies) go through ``row_of`` and ``logdb.write`` on a thread, in batches
of ``--batch`` rows, into a real SQLite file (WAL, as the gateway opens it); the figures are the
writer thread's CPU per row for building the rows and for committing them, beside the same rows
committed one statement per row (``executemany``, the writer's insert before ``logdb.insert_rows``).
With ``--busy`` the main thread runs Python meanwhile, as the gateway's event loop does, so the
writer's statements contend for the GIL as in the gateway. Rounds alternate the two inserts.
Writes bench/out/requestlog_writer.json; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from bench.gateway_bench import closed_loop, cost_row, measure
from loadbench.gateway import logdb
from loadbench.gateway.abconfig import RequestLogSpec
from loadbench.gateway.logrecord import LogRecord
from loadbench.gateway.requestlog import row_of
from loadbench.procs import ServerProcess, start_server
from loadbench.protocol.usage import Usage

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


def _records(count: int, worker: int) -> list[LogRecord]:
    """``count`` finished whole answers as ``requestlog.record_of`` copies them (64 tokens, usage decoded)."""
    now_ns, now_s = time.perf_counter_ns(), time.time()
    usage = Usage(12, 64, 0, 0)
    return [LogRecord(f"lb-{worker:x}-{i:x}", now_ns - 60_000_000, now_ns - 1_000_000, now_ns - 1_000_000, 64, b"",
                      None, "mock", "vm", "", "", 1, None, None, "", "primary", "", 200, now_ns, now_s, None, usage)
            for i in range(1, count + 1)]


def _insert_each(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
    """The reference: one batch in one transaction, one statement per row."""
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(logdb.INSERT, rows)
    conn.execute("COMMIT")


Insert = Callable[[sqlite3.Connection, Sequence[tuple[object, ...]]], None]


def _write_round(records: list[LogRecord], batch: int, write: Insert, busy: bool) -> dict[str, float]:
    """The writer thread's CPU per row (building, committing) for ``records`` in batches of ``batch``."""
    path = Path(tempfile.mkdtemp(prefix="logwriter-")) / "requests.db"
    spec = RequestLogSpec(str(path), batch, 0.2, 4096, None, None, "none", 0.0, (), None)
    logdb.create(spec.path).close()
    conn = logdb.connect(spec.path)
    cpu_ns = [0, 0]
    done = threading.Event()

    def writer() -> None:
        for start in range(0, len(records), batch):
            t0 = time.thread_time_ns()
            rows = [row_of(r, spec, {}, 1) for r in records[start:start + batch]]
            t1 = time.thread_time_ns()
            write(conn, rows)
            cpu_ns[0] += t1 - t0
            cpu_ns[1] += time.thread_time_ns() - t1
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    spins = 0
    while busy and not done.is_set() and spins < 100_000_000:  # the event loop's Python, holding the GIL
        spins += sum(range(200)) and 1
    thread.join()
    stored = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    conn.close()
    assert stored == len(records), (stored, len(records))
    return {"build_us_per_row": round(cpu_ns[0] / len(records) / 1e3, 2),
            "write_us_per_row": round(cpu_ns[1] / len(records) / 1e3, 2)}


def writer_main(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, {1})  # one core, as the gateway's threads share one
    records = _records(args.rows, os.getpid())
    inserts: dict[str, Insert] = {"chunked": logdb.write, "per_row": _insert_each}
    rows: list[dict[str, object]] = []
    for i in range(args.rounds):
        for name in (list(inserts) if i % 2 == 0 else list(reversed(inserts))):
            rows.append({"insert": name, "round": i, **_write_round(records, args.batch, inserts[name], args.busy)})
            print(json.dumps(rows[-1]), flush=True)
    median = {name: {key: statistics.median(float(str(r[key])) for r in rows if r["insert"] == name)
                     for key in ("build_us_per_row", "write_us_per_row")} for name in inserts}
    out = {"rows_per_round": args.rows, "batch": args.batch, "busy_main_thread": args.busy, "median": median,
           "rounds": rows}
    path = OUT.with_name("requestlog_writer.json")
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({"median": median}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=160)
    parser.add_argument("--writer", action="store_true", help="the log's writer alone (row building and commits)")
    parser.add_argument("--rows", type=int, default=20_000, help="--writer: records per round")
    parser.add_argument("--batch", type=int, default=100, help="--writer: records per batch (a flush's worth)")
    parser.add_argument("--busy", action="store_true", help="--writer: the main thread runs Python meanwhile")
    args = parser.parse_args(argv)
    if args.writer:
        return writer_main(args)
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
