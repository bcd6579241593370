"""Soak: the gateway in front of the mock at a steady rate, with hostile and unlucky clients mixed in.

Open loop at ``--rate`` requests per second for ``--seconds`` (default 180), 127.0.0.1 only, at most
``--max-in-flight`` at once (arrivals beyond it are counted as ``dropped``, never queued). Each
arrival is drawn (seeded) from this mix:

- ``stream`` / ``whole``: a normal request, served when it completes (``[DONE]`` / a JSON answer);
- ``slow_reader``: a stream read one chunk every ``--slow-read-s``;
- ``disconnect``: a stream abandoned after its first chunk (counted as ``left``);
- ``malformed``: in turn invalid JSON, an unknown model, a garbage request line on a raw socket, a
  body over ``limits.max_body_bytes``: each must get its 4xx, and is counted as ``rejected``.

Anything else (a 5xx, an SSE error event, a connection error on a normal request, a malformed
request not refused with a 4xx) is ``failed``. Every 10 s the gateway's RSS, open descriptors and
connections are sampled. It asserts nothing about speed: it reports, to bench/out/soak.json.

    .venv/bin/python -m bench.soak [--seconds 180] [--rate 100] [--slow-share 0.03] ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import yaml

from loadbench.procs import ServerProcess, start_server

OUT = Path(__file__).resolve().parent / "out" / "soak.json"
SAMPLE_EVERY_S = 10.0
MAX_BODY_BYTES = 64 * 1024
_MALFORMED = ("bad_json", "unknown_model", "garbage_line", "oversize")


def _config(mock: ServerProcess) -> str:
    cfg = {"targets": [{"name": "mock", "url": mock.base_url, "model": "mock-model"}],
           "virtual_models": [{"name": "chat", "targets": [{"target": "mock"}]}],
           "limits": {"max_body_bytes": MAX_BODY_BYTES}}
    path = Path(tempfile.mkdtemp(prefix="soak-")) / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


class Soak:
    def __init__(self, gw: ServerProcess, args: argparse.Namespace) -> None:
        self.gw = gw
        self.url = gw.url + "/v1/chat/completions"
        self.args = args
        self.rng = random.Random(args.seed)
        self.counts: Counter[str] = Counter()  # kind:result
        self.in_flight = 0
        self.malformed_turn = 0
        self.proc = psutil.Process(gw.proc.pid)
        self.samples: list[dict[str, Any]] = []

    def _kind(self) -> str:
        a = self.args
        x = self.rng.random()
        for kind, share in (("slow_reader", a.slow_share), ("disconnect", a.disconnect_share),
                            ("malformed", a.malformed_share), ("whole", a.whole_share)):
            if x < share:
                return kind
            x -= share
        return "stream"

    def _body(self, stream: bool) -> dict[str, Any]:
        return {"model": "chat", "messages": [{"role": "user", "content": "soak"}], "max_tokens": self.args.tokens,
                "stream": stream}

    async def one(self, s: aiohttp.ClientSession, kind: str) -> None:
        self.in_flight += 1
        try:
            result = await asyncio.wait_for(self._one(s, kind), self.args.request_timeout_s)
        except TimeoutError:
            result = "failed:timeout"
        except (aiohttp.ClientError, OSError) as exc:
            result = f"failed:{type(exc).__name__}"
        finally:
            self.in_flight -= 1
        self.counts[f"{kind}:{result}"] += 1

    async def _one(self, s: aiohttp.ClientSession, kind: str) -> str:
        if kind == "malformed":
            self.malformed_turn += 1
            return await self._malformed(s, _MALFORMED[self.malformed_turn % len(_MALFORMED)])
        stream = kind != "whole"
        async with s.post(self.url, json=self._body(stream)) as r:
            if r.status != 200:
                return f"failed:{r.status}"
            if not stream:
                body = await r.read()
                return "served" if b'"choices"' in body else "failed:body"
            if kind == "disconnect":
                await r.content.readany()
                r.close()
                return "left"  # on purpose; the gateway must just let go
            tail = b""
            while chunk := await r.content.readany():
                tail = (tail + chunk)[-512:]
                if kind == "slow_reader":
                    await asyncio.sleep(self.args.slow_read_s)
            ok = tail.endswith(b"data: [DONE]\n\n") and b'"error"' not in tail
            return "served" if ok else "failed:stream"

    async def _malformed(self, s: aiohttp.ClientSession, how: str) -> str:
        if how == "garbage_line":
            host, port = self.gw.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                writer.write(b"GARBAGE \x01\x02 HTTP/1.1\r\nAuthorization: Bearer sk-soak\r\n\r\n")
                await writer.drain()
                head = await reader.read(64)
            finally:
                writer.close()
            return "rejected" if head.split(b" ")[1:2] == [b"400"] else f"failed:{head[:20]!r}"
        if how == "bad_json":
            data = b'{"model": "chat", "messages": ['
        elif how == "unknown_model":
            data = json.dumps({**self._body(False), "model": "nope"}).encode()
        else:
            data = b'{"model":"chat","pad":"' + b"x" * (MAX_BODY_BYTES + 1024) + b'"}'
        async with s.post(self.url, data=data, headers={"Content-Type": "application/json"}) as r:
            await r.read()
            return "rejected" if 400 <= r.status < 500 else f"failed:{r.status}"

    def sample(self, t_s: float) -> None:
        try:
            rss_mb = self.proc.memory_info().rss / 2**20
            fds = self.proc.num_fds()
            conns = len(self.proc.net_connections(kind="tcp"))
        except psutil.Error:
            rss_mb, fds, conns = -1.0, -1, -1
        served = sum(v for k, v in self.counts.items() if k.endswith(":served"))
        failed = sum(v for k, v in self.counts.items() if ":failed" in k)
        row = {"t_s": round(t_s, 1), "served": served, "rejected": self.counts_of("rejected"),
               "left": self.counts_of("left"), "failed": failed,
               "dropped": self.counts["dropped"], "in_flight": self.in_flight, "rss_mb": round(rss_mb, 1),
               "open_fds": fds, "tcp_connections": conns}
        self.samples.append(row)
        print(json.dumps(row), flush=True)

    def counts_of(self, result: str) -> int:
        return sum(v for k, v in self.counts.items() if k.endswith(":" + result))

    async def run(self) -> None:
        a = self.args
        tasks: set[asyncio.Task[None]] = set()
        connector = aiohttp.TCPConnector(limit=a.max_in_flight)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as s:
            start = time.monotonic()
            self.sample(0.0)
            next_sample = SAMPLE_EVERY_S
            n = 0
            end = a.seconds
            while (now := time.monotonic() - start) < end:
                due = n / a.rate
                if due > now:
                    await asyncio.sleep(min(due - now, max(0.0, next_sample - now)) or 0)
                    if time.monotonic() - start >= next_sample:
                        self.sample(next_sample)
                        next_sample += SAMPLE_EVERY_S
                    continue
                n += 1
                if self.in_flight >= a.max_in_flight:
                    self.counts["dropped"] += 1
                    continue
                task = asyncio.get_running_loop().create_task(self.one(s, self._kind()))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(list(tasks), timeout=a.request_timeout_s + 5)
            self.sample(time.monotonic() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--rate", type=float, default=100.0, help="arrivals per second")
    p.add_argument("--tokens", type=int, default=32, help="max_tokens of every request")
    p.add_argument("--slow-share", type=float, default=0.03)
    p.add_argument("--slow-read-s", type=float, default=0.1, help="pause between a slow reader's reads")
    p.add_argument("--disconnect-share", type=float, default=0.05)
    p.add_argument("--malformed-share", type=float, default=0.05)
    p.add_argument("--whole-share", type=float, default=0.15)
    p.add_argument("--max-in-flight", type=int, default=1000)
    p.add_argument("--request-timeout-s", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    mock = start_server(["mock", "--port", "0", "--ttft-ms", "50", "--itl-ms", "5"])
    gw: ServerProcess | None = None
    try:
        gw = start_server(["gateway", "--config", _config(mock), "--port", "0"])
        soak = Soak(gw, args)
        asyncio.run(soak.run())
    finally:
        if gw is not None:
            gw.stop()
        mock.stop()
    first, last = soak.samples[0], soak.samples[-1]
    steady = soak.samples[1:] or soak.samples
    result = {
        "bench": "soak", "seconds": args.seconds, "rate": args.rate, "tokens": args.tokens,
        "mix": {"slow_reader": args.slow_share, "disconnect": args.disconnect_share,
                "malformed": args.malformed_share, "whole": args.whole_share},
        "counts": dict(sorted(soak.counts.items())),
        "served": last["served"], "rejected": last["rejected"], "left": last["left"], "failed": last["failed"],
        "dropped": last["dropped"],
        "rss_mb": {"first": first["rss_mb"], "min_after_start": min(r["rss_mb"] for r in steady),
                   "max": max(r["rss_mb"] for r in soak.samples), "last": last["rss_mb"]},
        "open_fds": {"first": first["open_fds"], "max": max(r["open_fds"] for r in soak.samples),
                     "last": last["open_fds"]},
        "samples": soak.samples,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
