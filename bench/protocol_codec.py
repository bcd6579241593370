"""Per-token CPU of each dialect's stream decoder and encoder, of the gateway's translating relay, and
per-request CPU of a Bedrock request built and SigV4-signed, in one process with nothing else running.

Each stream is ``--tokens`` answer chunks of one short word between its dialect's head and tail, as its
encoder writes them. Decoding feeds one chunk per read (a gateway's or worker's common read: one whole
event) to a fresh decoder, and again four token events per read (a reader that fell behind, as a
loaded gateway does); encoding is ``content`` per token; the relay is ``DialectRelay`` from the
target's bytes (one event per read, then four) to OpenAI's. Figures are microseconds per token (per request for
signing, and for the worker's read of a whole streamed response, ``workers.stream._read_stream``, per
request): the best of ``--repeats`` timed loops of ``--streams`` streams each (the best, because other
processes on a shared machine only ever add time).

    .venv/bin/python -m bench.protocol_codec [--tokens 64] [--streams 200] [--repeats 7]
Writes bench/out/protocol_codec.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from loadbench.gateway.translate import DialectRelay
from loadbench.protocol.aws import AwsCredentials, sign
from loadbench.protocol.dialect import STOP, LLMRequest, Message
from loadbench.protocol.openai import OPENAI
from loadbench.protocol.registry import dialect
from loadbench.protocol.usage import Usage

OUT = Path(__file__).resolve().parent / "out" / "protocol_codec.json"
PROTOCOLS = ("openai", "azure", "anthropic", "bedrock", "gemini", "openai-responses")
RELAYED = ("anthropic", "bedrock", "gemini", "openai-responses")
USAGE = Usage(prompt_tokens=12, completion_tokens=64)


def chunks(protocol: str, tokens: int, per_read: int = 1) -> list[bytes]:
    """A stream as its dialect's encoder writes it, one element per read: the head, ``per_read`` tokens at
    a time (a reader that fell behind gets several events in one read), the tail."""
    enc = dialect(protocol).encoder("bench-model", "resp-1")
    head = enc.head()  # first, as a server writes it: an encoder is stateful (the Responses API numbers its events)
    pieces = [enc.content(f"tok{i} ") for i in range(tokens)]
    return [head, *(b"".join(pieces[i:i + per_read]) for i in range(0, tokens, per_read)), enc.tail(STOP, USAGE)]


def best_us(run: Callable[[], None], per: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time_ns()
        run()
        best = min(best, time.process_time_ns() - t0)
    return round(best / per / 1000, 3)


def decode_us(protocol: str, tokens: int, streams: int, repeats: int, per_read: int = 1) -> float:
    d, raw = dialect(protocol), chunks(protocol, tokens, per_read)

    def run() -> None:
        for _ in range(streams):
            dec = d.decoder()
            for c in raw:
                dec.feed(c)
            dec.feed(b"", True)
    return best_us(run, tokens * streams, repeats)


def encode_us(protocol: str, tokens: int, streams: int, repeats: int) -> float:
    d = dialect(protocol)
    words = [f"tok{i} " for i in range(tokens)]

    def run() -> None:
        for _ in range(streams):
            enc = d.encoder("bench-model", "resp-1")
            enc.head()
            for w in words:
                enc.content(w)
            enc.tail(STOP, USAGE)
    return best_us(run, tokens * streams, repeats)


def relay_us(protocol: str, tokens: int, streams: int, repeats: int, per_read: int = 1) -> float:
    d, raw = dialect(protocol), chunks(protocol, tokens, per_read)

    def run() -> None:
        for _ in range(streams):
            relay = DialectRelay(d.decoder(), lambda m: OPENAI.encoder(m, "chatcmpl-1"), "bench-model",
                                 "its end", 1 << 20)
            for i, c in enumerate(raw):
                relay.feed(c, i)
            relay.end(len(raw))
    return best_us(run, tokens * streams, repeats)


class _Body:
    """What the worker's stream reader reads a response through (a geventhttpclient response): the body
    bytes of each socket read, here one read per event group of ``reads``, the HTTP parsing left out
    (it costs every protocol alike)."""

    block_size = 65536

    def __init__(self, reads: list[bytes]) -> None:
        self._reads, self._next = reads, 0
        self._body_buffer = bytearray()
        self.message_complete = False
        self._sock = self

    def recv(self, _size: int) -> bytes:
        self._next += 1
        return self._reads[self._next - 1]

    def feed(self, data: bytes) -> None:
        self._body_buffer += data
        self.message_complete = self._next == len(self._reads)

    def release(self) -> None:
        pass


def worker_read_us(protocol: str, tokens: int, streams: int, repeats: int) -> float:
    """The worker's read of one streamed response (``workers.stream._read_stream``: every read decoded
    and timed), per request."""
    from loadbench import outcomes
    from loadbench.workers.stream import Measured, _read_stream

    d, raw = dialect(protocol), [c for c in chunks(protocol, tokens) if c]  # a socket read is never empty

    def run() -> None:
        for _ in range(streams):
            m = Measured(outcome=outcomes.OK, status=200, sent_ns=0)
            _read_stream(_Body(raw), m, d)
            if m.outcome != outcomes.OK or len(m.token_times_ns) != tokens:
                raise RuntimeError(f"{protocol}: the worker read {m.outcome} ({m.error})")
    return best_us(run, streams, repeats)


def sign_us(streams: int, repeats: int) -> float:
    bedrock = dialect("bedrock")
    wire = bedrock.request(LLMRequest("anthropic.claude-x-v1:0", (Message("user", "hello"),), max_tokens=64,
                                      stream=True))
    url = "https://bedrock-runtime.us-east-1.amazonaws.com" + wire.path
    creds = AwsCredentials("AKIDBENCH", "bench-secret")
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def run() -> None:
        for _ in range(streams):
            sign(wire, url, creds, "us-east-1", now)
    return best_us(run, streams, repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--streams", type=int, default=200)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    n, s, r = args.tokens, args.streams, args.repeats
    out = {
        "decode_us_per_token": {name: decode_us(name, n, s, r) for name in PROTOCOLS},
        "encode_us_per_token": {name: encode_us(name, n, s, r) for name in PROTOCOLS},
        "decode_4_per_read_us_per_token": {name: decode_us(name, n, s, r, 4) for name in PROTOCOLS},
        "relay_to_openai_us_per_token": {name: relay_us(name, n, s, r) for name in RELAYED},
        "relay_4_per_read_us_per_token": {name: relay_us(name, n, s, r, 4) for name in RELAYED},
        "bedrock_sign_us_per_request": sign_us(s, r),
        "worker_read_us_per_request": {name: worker_read_us(name, n, s, r) for name in PROTOCOLS},
    }
    reads = out["worker_read_us_per_request"]
    out["worker_read_to_openai"] = {name: round(reads[name] / reads["openai"], 2) for name in PROTOCOLS}
    print(json.dumps(out, indent=2))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"bench": "protocol_codec", "tokens": n, "streams": s, "repeats": r,
                               "python": platform.python_version(), "load_average": os.getloadavg(), **out},
                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
