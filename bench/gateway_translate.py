"""The gateway's CPU cost of translating OpenAI to another protocol, against its own OpenAI pass-through.

Two gateways, both pinned to CPU 1 and loaded at once by OpenAI clients (``--concurrency`` closed-loop
users each), so whatever else runs on that core costs both alike (``bench/gateway_paired.py``'s method):
one reaches an OpenAI target (the byte relay), the other an ``--protocol`` target (each attempt built by
that dialect, its stream decoded and re-written as OpenAI's). Both targets are one paced upstream
(``bench/dialect_upstream.py``: TTFT 50 ms, ITL 5 ms, 64 tokens) answering each protocol on its own
routes, on CPU 0 with this generator. Streamed then non-streamed, ``--rounds`` each; the figure is the
median over rounds of (translating gateway req/CPU-s) / (pass-through gateway req/CPU-s). Issue 20 asks
for at least 0.8. Writes bench/out/gateway_translate_<protocol>.json; asserts nothing.

    .venv/bin/python -m bench.gateway_translate [--protocol anthropic|bedrock|...] [--seconds 15] [--concurrency 40]
                                                [--json-concurrency 200] [--rounds 3] [--only stream|nonstream]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from bench.gateway_paired import _rounds
from loadbench.procs import ServerProcess, start_server

OUT = Path(__file__).resolve().parent / "out"
# the base URL of a target of each protocol on the paced upstream (whose routes carry their own prefix)
BASE = {"openai": "/v1", "openai-responses": "/v1"}
AWS_ENV = {"AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench-secret"}


@contextlib.contextmanager
def paced_upstream() -> Iterator[str]:
    proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "bench.dialect_upstream"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"listening on (http://\S+)", line)
        if found is None:
            raise RuntimeError(f"the paced upstream did not start: {line!r}")
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(10)


def _config(upstream: str, protocol: str, folder: Path) -> str:
    target = {"name": "t", "url": upstream + BASE.get(protocol, ""), "model": "up-model", "protocol": protocol}
    if protocol == "bedrock":
        target["region"] = "us-east-1"  # signed with AWS_ENV's made-up keys: the paced upstream checks no signature
    cfg = {"targets": [target], "virtual_models": [{"name": "vm", "targets": [{"target": "t"}]}]}
    path = folder / f"gateway-{protocol}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", default="anthropic")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--concurrency", type=int, default=40)
    p.add_argument("--json-concurrency", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", choices=("stream", "nonstream"), help="one kind of request only")
    args = p.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="gwtranslate-"))
    started: list[ServerProcess] = []
    try:
        with paced_upstream() as upstream:
            for protocol in ("openai", args.protocol):
                started.append(start_server(["gateway", "--config", _config(upstream, protocol, folder),
                                             "--port", "0"], cpu=1, env={**os.environ, **AWS_ENV}))
            servers = {"pass_through": (started[0].url, started[0].proc.pid),
                       "translating": (started[1].url, started[1].proc.pid)}
            rows = _rounds(args, servers, ("translating", "pass_through"))
    finally:
        for server in reversed(started):
            server.stop()
    summary = {f"translating_{args.protocol}_to_pass_through": {
        kind: round(statistics.median(r["ratio"] for r in rows if r["stream"] == (kind == "stream")), 3)
        for kind in ("stream", "nonstream") if kind == (args.only or kind)}}
    out = {"bench": "gateway_translate", "protocol": args.protocol, "seconds": args.seconds,
           "concurrency": args.concurrency, "json_concurrency": args.json_concurrency,
           "load_average": os.getloadavg(), **summary, "rounds": rows}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"gateway_translate_{args.protocol}.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
