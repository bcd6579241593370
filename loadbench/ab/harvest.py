"""Harvest an eval dataset from logged request bodies: a stratified, seeded sample. Pure, but for
``harvest``, which reads the request log and writes the dataset (``loadbench dataset from-log``).

Strata are the values of one metadata key (requests without it form the stratum ``(none)``). The
sample gives each stratum ``n · size / total`` cases (largest remainder), at least one while ``n``
allows, then draws that many from the stratum without replacement with a seeded RNG. Identical
request bodies count once. Cases follow docs/eval.md: ``messages`` (chat) or ``prompt`` (completions),
``tags`` with the stratum, ``id`` the request id; they carry no ground truth (add it before scoring
anything but a judge).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loadbench.errors import InputError
from loadbench.results.request_log import NO_VALUE, LoggedRequestBody, RequestLog, metadata_value


@dataclass(frozen=True, slots=True)
class LoggedBody:
    request_id: str
    body: dict[str, Any]  # the redacted request body as logged
    stratum: str


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Cases per stratum: proportional, largest remainder, at least one each while n allows, never more
    than the stratum holds."""
    total = sum(sizes.values())
    if total == 0 or n <= 0:
        return {k: 0 for k in sizes}
    n = min(n, total)
    quotas = {k: n * v / total for k, v in sizes.items()}
    out = {k: min(sizes[k], math.floor(q)) for k, q in quotas.items()}
    if n >= len(sizes):
        for k in out:
            out[k] = max(out[k], 1)
    order = sorted(sizes, key=lambda k: (-(quotas[k] - math.floor(quotas[k])), k))
    while sum(out.values()) < n:
        grew = False
        for k in order:
            if sum(out.values()) >= n:
                break
            if out[k] < sizes[k]:
                out[k] += 1
                grew = True
        if not grew:
            break
    while sum(out.values()) > n:  # the at-least-one rule overshot: take back from the largest
        k = max(out, key=lambda key: (out[key], key))
        out[k] -= 1
    return out


def stratified(bodies: Sequence[LoggedBody], n: int, seed: int) -> list[LoggedBody]:
    seen: set[bytes] = set()
    unique: dict[str, list[LoggedBody]] = {}
    for b in bodies:
        key = repr(sorted(b.body.items())).encode()
        if key in seen:
            continue
        seen.add(key)
        unique.setdefault(b.stratum, []).append(b)
    counts = allocate({k: len(v) for k, v in unique.items()}, n)
    rng = random.Random(seed)
    out: list[LoggedBody] = []
    for stratum in sorted(unique):
        out += rng.sample(unique[stratum], counts[stratum])
    return out


def to_case(b: LoggedBody, key: str | None) -> dict[str, Any] | None:
    """A dataset case, or None when the body has neither chat messages nor a prompt string."""
    case: dict[str, Any] = {"id": b.request_id, "kind": "representative"}
    if key:
        case["tags"] = [f"{key}:{b.stratum}"]
    messages = b.body.get("messages")
    prompt = b.body.get("prompt")
    if isinstance(messages, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                          for m in messages) and messages:
        case["messages"] = [{"role": str(m.get("role", "user")), "content": m["content"]} for m in messages]
    elif isinstance(prompt, str):
        case["prompt"] = prompt
    else:
        return None
    if isinstance(b.body.get("max_tokens"), int):
        case["max_tokens"] = b.body["max_tokens"]
    return case


def logged_bodies(rows: Sequence[LoggedRequestBody], stratify: str | None) -> list[LoggedBody]:
    """The rows whose body is a JSON object, each in the stratum of its ``stratify`` metadata value."""
    bodies = []
    for row in rows:
        try:
            body = orjson.loads(row.request_body)
        except orjson.JSONDecodeError:
            continue
        stratum = metadata_value(row.metadata, stratify) if stratify else NO_VALUE
        if isinstance(body, dict):
            bodies.append(LoggedBody(row.request_id, body, stratum))
    return bodies


def harvest(log_path: str | Path, out_path: Path, n: int, stratify: str | None, model: str | None, seed: int) -> str:
    """Write a stratified sample of the logged request bodies as dataset cases; the line to print."""
    with RequestLog.open(log_path) as log:
        bodies = logged_bodies(log.request_bodies(model), stratify)
    if not bodies:
        raise InputError(f"{log.name}: no logged request bodies (set request_log.log_bodies in the gateway config)")
    cases = [c for c in (to_case(b, stratify) for b in stratified(bodies, n, seed)) if c is not None]
    out_path.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in cases))
    return f"{out_path}: {len(cases)} cases from {len(bodies)} logged requests"
