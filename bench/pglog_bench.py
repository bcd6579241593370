"""The request log's writer into PostgreSQL: the rows per second one gateway process sustains.

The real ``RequestLog`` of one process: records added on its event loop (``add``, as an exchange's end
does), handed over in batches, and the writer thread's whole work per batch (rows built with the usage
parsed from the answer's tail and the cost from a price, ``events.log_batch``, ``COPY`` into the day's
partition, one commit). The loop adds records only while the queue has room, so nothing is dropped and
the rate is the writer's own: rows committed over ``--seconds`` after a warm-up. The bar: at least
5,000 rows/s per replica. PostgreSQL is one this bench starts (``bench.postgres``: initdb into a
temporary folder, 127.0.0.1), or an existing one (``--dsn-env VAR``); on one machine it takes CPU from
the writer, so the figure is a floor for a database on its own host.

    .venv/bin/python -m bench.pglog_bench [--seconds 10] [--batch-rows 256 1024] [--dsn-env VAR]
Writes bench/out/pglog.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

import psutil

from bench.postgres import fresh_database, postgres_server
from loadbench.gateway.config import compile_model, parse_model
from loadbench.gateway.context import RequestContext
from loadbench.gateway.events import GatewayEvents
from loadbench.gateway.requestlog import RequestLog

OUT = Path(__file__).resolve().parent / "out" / "pglog.json"
BAR_ROWS_PER_S = 5000
WARMUP_S = 2.0
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":412,"completion_tokens":64,"total_tokens":476}}\n\n'
PRICES = "currency: USD\nsource: bench\nas_of: 2026-12-01\nmodels:\n  m: {input_per_mtok: 1.0, output_per_mtok: 2.0}\n"


async def writer_rate(dsn: str, folder: Path, batch_rows: int, seconds: float) -> dict[str, float]:
    (folder / "prices.yaml").write_text(PRICES)
    cfg = {"targets": [{"name": "t", "url": "http://127.0.0.1:9/v1", "model": "m"}],
           "virtual_models": [{"name": "vm", "targets": [{"target": "t"}]}],
           "request_log": {"backend": "postgres", "dsn_env": "BENCH_LOG_DSN", "path": str(folder / "state.db"),
                           "batch_rows": batch_rows, "queue_rows": batch_rows * 16, "pricing": "prices.yaml"}}
    spec = compile_model(parse_model(cfg, "bench.yaml"), str(folder / "bench.yaml"), env={"BENCH_LOG_DSN": dsn})
    log = RequestLog.open(spec, GatewayEvents(), random.Random(1))
    now = time.perf_counter_ns()
    ctx = RequestContext("lb-bench-1", now - 900_000_000, "chat", stream=True, metadata={"task": "qa", "user": "u1"},
                         client_key_digest=bytes(range(32)), route=spec.routes["vm"], attempts=1, target="t",
                         first_ns=now - 800_000_000, last_ns=now - 1_000_000, tokens=64, usage_tail=USAGE)
    assert log.spec.queue_rows == batch_rows * 16
    proc = psutil.Process()
    marks: list[tuple[float, int, float]] = []
    start = time.monotonic()
    end = start + WARMUP_S + seconds
    while (t := time.monotonic()) < end:
        if not marks and t >= start + WARMUP_S:
            marks.append((t, log.written, sum(proc.cpu_times()[:2])))
        room = log.spec.queue_rows - (len(log.pending) + log.handed - log.written)
        for _ in range(min(room, batch_rows)):
            log.add(ctx, 200)
        await asyncio.sleep(0 if room else 0.001)
    marks.append((time.monotonic(), log.written, sum(proc.cpu_times()[:2])))
    log.close()
    (t0, n0, c0), (t1, n1, c1) = marks
    assert log.dropped == 0 and log.lost == 0
    rows = n1 - n0
    return {"batch_rows": batch_rows, "rows": rows, "seconds": round(t1 - t0, 3), "rows_per_s": round(rows / (t1 - t0)),
            "gateway_cpu_us_per_row": round((c1 - c0) / rows * 1e6, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch-rows", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--dsn-env", default=None, help="benchmark the PostgreSQL this variable's DSN names")
    args = ap.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="pglog-bench-") as tmp:
        for batch_rows in args.batch_rows:
            folder = Path(tmp) / str(batch_rows)
            folder.mkdir()
            if args.dsn_env:
                results.append(asyncio.run(writer_rate(os.environ[args.dsn_env], folder, batch_rows, args.seconds)))
                continue
            with postgres_server() as server:
                results.append(asyncio.run(writer_rate(fresh_database(server), folder, batch_rows, args.seconds)))
    default = results[0]
    out = {"bench": "pglog", "bar_rows_per_s": BAR_ROWS_PER_S, "rows_per_s": default["rows_per_s"],
           "batch_rows": default["batch_rows"], "pass": default["rows_per_s"] >= BAR_ROWS_PER_S, "runs": results,
           "cpus": os.cpu_count(), "conditions": "PostgreSQL on the same machine" if not args.dsn_env else "given DSN"}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))
    return 0 if out["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
