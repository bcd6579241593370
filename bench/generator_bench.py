"""The load generator's own cost and accuracy: CPU-seconds per 1,000 streamed requests and per
100,000 chunks, at 200 and 1,000 concurrent streams on ONE worker core, against the mock.

The mock runs pinned to CPU 0, loadbench (master + one worker) pinned to CPU 1. Each level is one real
``loadbench run``; the worker's user+sys CPU time comes from its final report (summary
``generator.cpu_s``). Accuracy is read back against the mock's settings (TTFT, ITL, TPOT).

At 1,000 streams the mock's ITL is raised (default 50 ms) so the mock, on one core, can still keep its
schedule; the per-chunk cost is what matters there, and it is reported per 100,000 chunks.

    .venv/bin/python -m bench.generator_bench [--levels 200:10,1000:50] [--seconds 30] [--tokens 128]
Writes bench/out/generator.json.

``--reads``: the worker's CPU per streamed request and per chunk in one process, nothing else running,
for each protocol (``workers.stream._read_stream`` over each dialect's encoded stream, one socket read
per event, the HTTP parsing left out since it costs every protocol alike), the decode of one answer
chunk in the middle of a stream (the per-chunk cost without the stream's head and tail), the cost of a kernel
receive stamp per read (``recvmsg`` with its stamp mapped onto our clock against a plain ``recv``, on
a real loopback TCP connection), the cost of the worker's send stamp and stamped head read per
request (``send_stamp``), and the read of a chunk not there yet when the reader asks (gevent's
read, which tries first, against the worker's, which waits first). Process CPU time, best of
``--repeats`` (others on a shared machine only ever add time). Writes bench/out/generator_reads.json.

    .venv/bin/python -m bench.generator_bench --reads [--tokens 64] [--streams 200] [--repeats 7]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.event import Event

from bench.protocol_codec import PROTOCOLS, _Body, chunks
from loadbench import outcomes, rxstamp
from loadbench.metrics.client_delay import TTFT_P99_PROMISE_MS
from loadbench.procs import start_server
from loadbench.protocol.registry import dialect
from loadbench.workers import sockets
from loadbench.workers.receive import ReceiveClock
from loadbench.workers.stream import Measured, _read_stream, _recv_stamped

OUT = Path(__file__).resolve().parent / "out" / "generator.json"
READS_OUT = Path(__file__).resolve().parent / "out" / "generator_reads.json"
TTFT_MS = 50.0


def run_level(streams: int, itl_ms: float, seconds: float, tokens: int, workdir: Path) -> dict[str, Any]:
    scenario = workdir / "scenario.yaml"
    scenario.write_text(f"name: bench\nprompt_tokens: 64\noutput_tokens: {tokens}\n")
    mock = start_server(["mock", "--port", "0", "--ttft-ms", str(TTFT_MS), "--itl-ms", str(itl_ms)], cpu=0)
    try:
        out = workdir / f"results-{streams}"
        ramp = max(2.0, streams / 200)
        cmd = ["taskset", "-c", "1", sys.executable, "-m", "loadbench", "run", "--target", mock.base_url,
               "--scenario", str(scenario), "--users", str(streams), "--ramp-up", str(ramp),
               "--duration", str(seconds), "--out", str(out), "--name", f"gen{streams}"]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 120)
        wall = time.monotonic() - t0
    finally:
        mock.stop()
    if proc.returncode not in (0, 3):
        raise SystemExit(f"loadbench run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    run = next(p for p in out.iterdir() if p.is_dir())
    s = json.loads((run / "summary.json").read_text())
    cpu_s = s["generator"]["cpu_s"]
    finished = s["requests"]["total"] + s["requests"]["excluded"]
    chunks = s["metrics"]["itl_ms"]["count"] + s["requests"]["ok"]
    m = s["metrics"]
    return {
        "streams": streams, "mock_ttft_ms": TTFT_MS, "mock_itl_ms": itl_ms, "output_tokens": tokens,
        "duration_s": seconds, "wall_s": round(wall, 1), "requests_ok": s["requests"]["ok"],
        "chunks": chunks, "worker_cpu_s": cpu_s,
        "cpu_s_per_1000_requests": round(1000 * cpu_s / finished, 3) if finished else None,
        "cpu_ms_per_request": round(1000 * cpu_s / finished, 3) if finished else None,
        "cpu_s_per_100k_chunks": round(100_000 * cpu_s / chunks, 3) if chunks else None,
        "ttft_p50_error_ms": round(m["ttft_ms"]["p50"] - TTFT_MS, 3),
        "ttft_p99_error_ms": round(m["ttft_ms"]["p99"] - TTFT_MS, 3),
        "itl_p50_error_ms": round(m["itl_ms"]["p50"] - itl_ms, 3),
        "tpot_mean_error_ms": round(m["tpot_ms"]["mean"] - itl_ms, 3),
        "accuracy_holds": (abs(m["ttft_ms"]["p50"] - TTFT_MS) <= 2
                           and abs(m["ttft_ms"]["p99"] - TTFT_MS) <= TTFT_P99_PROMISE_MS
                           and abs(m["itl_ms"]["p50"] - itl_ms) <= 1 and abs(m["tpot_ms"]["mean"] - itl_ms) <= 0.5),
        "generator": s["generator"],
    }


def best_cpu_ns(run: Callable[[], None], repeats: int) -> int:
    """The least process CPU time (ns) ``run`` took in ``repeats`` tries."""
    best = None
    for _ in range(repeats):
        t0 = time.process_time_ns()
        run()
        took = time.process_time_ns() - t0
        best = took if best is None else min(best, took)
    assert best is not None
    return best


def read_cost(protocol: str, tokens: int, streams: int, repeats: int) -> dict[str, float]:
    """CPU of the worker's read of one streamed response in ``protocol`` (one socket read per event),
    per request and per content chunk, in microseconds."""
    d, raw = dialect(protocol), [c for c in chunks(protocol, tokens) if c]  # a socket read is never empty
    unstamped = ReceiveClock(enabled=False)

    def run() -> None:
        for _ in range(streams):
            m = Measured(outcome=outcomes.OK, status=200, sent_ns=0)
            _read_stream(_Body(raw), m, d, unstamped)
            if m.outcome != outcomes.OK or len(m.token_times_ns) != tokens:
                raise RuntimeError(f"{protocol}: the worker read {m.outcome} ({m.error})")
    ns = best_cpu_ns(run, repeats)
    return {"us_per_request": round(ns / streams / 1000, 2), "us_per_chunk": round(ns / streams / tokens / 1000, 3)}


def chunk_decode_us(protocol: str, chunks_n: int, repeats: int) -> float:
    """Microseconds of CPU to decode one answer chunk of ``protocol`` in the middle of a stream (one
    chunk per read, after the stream's head and first two chunks): the per-chunk cost alone."""
    enc = dialect(protocol).encoder("bench-model", "resp-1")
    head = enc.head()
    body = [enc.content(f"tok{i} ") for i in range(chunks_n + 2)]
    best = None
    for _ in range(repeats):
        dec = dialect(protocol).decoder()
        for c in (head, body[0], body[1]):
            dec.feed(c)
        t0 = time.process_time_ns()
        for c in body[2:]:
            dec.feed(c)
        took = time.process_time_ns() - t0
        best = took if best is None else min(best, took)
    assert best is not None
    return round(best / chunks_n / 1000, 3)


EVENT = b"data: " + b"x" * 142 + b"\n\n"  # one 150-byte SSE event


@contextlib.contextmanager
def loopback_pair() -> Iterator[tuple[Any, Any]]:
    """A connected (client, peer) pair of gevent TCP sockets on loopback, as the worker's, with
    Nagle off on the client so each send is its own segment; closed on exit."""
    server = gsocket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = gsocket.create_connection(server.getsockname())
    peer, _ = server.accept()
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        yield client, peer
    finally:
        for s in (client, peer, server):
            s.close()


def stamp_cost(reads: int, repeats: int) -> dict[str, float]:
    """Microseconds of CPU per read: a plain ``recv`` and a stamped one (``rxstamp.recv`` and the stamp
    mapped by the worker's ``ReceiveClock``), each after one send of a 150-byte event on a loopback TCP
    connection (gevent sockets, as the worker's); the send costs both alike."""
    with loopback_pair() as (client, peer):
        clock = ReceiveClock()
        if not clock.stamps(peer):
            raise SystemExit("kernel receive stamps are not available here")

        def plain() -> None:
            for _ in range(reads):
                client.send(EVENT)
                peer.recv(65536)

        def stamped() -> None:
            for _ in range(reads):
                client.send(EVENT)
                _, stamp = rxstamp.recv(peer, 65536)
                if stamp is not None:
                    clock.to_perf_ns(stamp, time.perf_counter_ns(), 0)
        stamped()  # the kernel turns stamping on a moment after the first ask
        plain_ns, stamped_ns = best_cpu_ns(plain, repeats), best_cpu_ns(stamped, repeats)
    return {"recv_us": round(plain_ns / reads / 1000, 3), "stamped_recv_us": round(stamped_ns / reads / 1000, 3),
            "stamp_us": round((stamped_ns - plain_ns) / reads / 1000, 3)}


def send_stamp_cost(requests: int, repeats: int) -> dict[str, float]:
    """Microseconds of CPU per request for the worker's stamped sockets (``workers.sockets``): a
    350-byte request sent and a 100-byte response head read back through ``sendall`` and ``recv``, on
    a socket with send and receive stamps (the send's stamp taken off the error queue, the read's from
    ``recvmsg``) against the same socket class with stamps off; the peer's side costs both alike."""
    request, head = b"P" * 350, b"H" * 100

    def round_trips(clock: ReceiveClock) -> Callable[[], None]:
        def run() -> None:
            server = socket.socket()
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            client = sockets.stamped_socket(socket.AF_INET, socket.SOCK_STREAM, 0, clock)
            client.connect(server.getsockname())
            peer, _ = server.accept()
            try:
                for _ in range(requests):
                    client.sendall(request)
                    peer.recv(65536)
                    peer.sendall(head)
                    client.recv(65536)
            finally:
                for s in (client, peer, server):
                    s.close()
        return run
    round_trips(ReceiveClock())()  # the kernel turns receive stamping on a moment after the first ask
    plain_ns = best_cpu_ns(round_trips(ReceiveClock(enabled=False)), repeats)
    stamped_ns = best_cpu_ns(round_trips(ReceiveClock()), repeats)
    return {"plain_us": round(plain_ns / requests / 1000, 3), "stamped_us": round(stamped_ns / requests / 1000, 3),
            "send_and_head_stamps_us": round((stamped_ns - plain_ns) / requests / 1000, 3)}


def waiting_read_cost(events: int, repeats: int) -> dict[str, float]:
    """Microseconds of CPU per event for a reader that keeps up: each 150-byte event is not there yet
    when the reader asks, and a sender greenlet writes it meanwhile (loopback TCP, stamps on). gevent's
    own read (it tries, fails, waits, reads) against the worker's (``workers.stream._recv_stamped``: it
    waits, then reads); the sender costs both alike."""
    total = events * len(EVENT)
    with loopback_pair() as (client, peer):
        ReceiveClock().stamps(peer)
        asked = Event()  # the reader has asked for the next event: the sender writes it (one event per read)

        def send() -> None:
            for _ in range(events):
                asked.wait()
                asked.clear()
                client.send(EVENT)

        def reading(read: Callable[[Any, int], tuple[bytes, int | None]]) -> Callable[[], None]:
            def run() -> None:
                sender = gevent.spawn(send)
                got = 0
                while got < total:  # bounded: the sender writes exactly total bytes
                    asked.set()
                    got += len(read(peer, 65536)[0])
                sender.join()
            return run
        tries_first = best_cpu_ns(reading(rxstamp.recv), repeats)
        waits_first = best_cpu_ns(reading(_recv_stamped), repeats)
    return {"gevent_read_us": round(tries_first / events / 1000, 3),
            "wait_then_read_us": round(waits_first / events / 1000, 3)}


def reads_bench(tokens: int, streams: int, repeats: int) -> dict[str, Any]:
    costs = {p: read_cost(p, tokens, streams, repeats) for p in PROTOCOLS}
    base = costs["openai"]["us_per_request"]
    return {"bench": "generator_reads", "tokens": tokens, "streams": streams, "repeats": repeats,
            "load_average": os.getloadavg(), "read": costs,
            "to_openai": {p: round(c["us_per_request"] / base, 2) for p, c in costs.items()},
            "chunk_decode_us": {p: chunk_decode_us(p, 2000, repeats) for p in PROTOCOLS},
            "stamp": stamp_cost(20_000, repeats), "waiting_read": waiting_read_cost(20_000, repeats),
            "send_stamp": send_stamp_cost(5_000, repeats)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="200:10,1000:50", help="streams:itl_ms pairs")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--tokens", type=int, default=None, help="output tokens (default 128; 64 with --reads)")
    ap.add_argument("--reads", action="store_true", help="the in-process read cost per protocol and per stamp")
    ap.add_argument("--streams", type=int, default=200, help="--reads: streams per timed loop")
    ap.add_argument("--repeats", type=int, default=7, help="--reads: timed loops (the best is kept)")
    args = ap.parse_args(argv)
    if args.reads:
        doc = reads_bench(args.tokens or 64, args.streams, args.repeats)
        print(json.dumps(doc, indent=2))
        READS_OUT.parent.mkdir(parents=True, exist_ok=True)
        READS_OUT.write_text(json.dumps(doc, indent=2) + "\n")
        return 0
    args.tokens = args.tokens or 128
    results = []
    with tempfile.TemporaryDirectory(prefix="lb-genbench-") as tmp:
        for level in args.levels.split(","):
            streams, itl = level.split(":")
            r = run_level(int(streams), float(itl), args.seconds, args.tokens, Path(tmp))
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "generator"}), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"bench": "generator", "levels": results}, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
