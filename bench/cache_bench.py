"""Cache core speed and memory at 100,000 entries (no gateway, no network: the pure lookup path).

Every entry in ONE partition (same tenant, model, system prompt, parameters). Semantic lookups
scan only the entries that share the request's guard signature (numbers, negations, content
words; see loadbench/cache/cache.py). Phases:

1. fill: store N answers (with --memory: tracemalloc + RSS delta -> memory per 100,000 entries);
2. exact hits: lookups of stored requests;
3. semantic hits: lightly reworded stored questions (exact miss -> embed -> scan -> guard);
4. semantic misses: unseen questions (exact miss -> embed -> full scan, nothing above threshold);
5. embedder: built-in embed time by text length vs. one thread-executor hop (the inline decision);
6. worst case: N entries that all share ONE signature (reorderings of the same eight words), so
   the pre-filter keeps every row and a semantic lookup is the full N x dim product again.

Each lookup is timed around ``await cache.lookup(...)`` with perf_counter_ns. Run twice: with the
cache's objects frozen out of the GC (``gc.freeze()``, what the gateway should do after warm-up)
and without, because full collections walking 100k entries are what sets the tail.

    .venv/bin/python -m bench.cache_bench [--entries 100000] [--lookups 3000] [--memory] [--no-worst]
Writes bench/out/cache.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from loadbench.cache import CacheConfig, CachedAnswer, CacheScope, HashingEmbedder, ResponseCache

OUT = Path(__file__).resolve().parent / "out" / "cache.json"
_VOCAB = (
    "apple", "river", "engine", "garden", "python", "network", "matrix", "violin", "castle",
    "desert", "rocket", "harbor", "pencil", "thunder", "glacier", "market", "silver", "forest",
    "lantern", "bridge", "cotton", "saddle", "marble", "planet", "window", "falcon", "copper",
    "meadow", "puzzle", "signal", "tunnel", "voyage", "yellow", "zipper", "orchard", "pepper",
    "quartz", "ribbon", "shadow", "timber", "velvet", "walnut", "beacon", "canyon", "dragon",
    "ember", "fossil", "goblet",
)
_FORMS = ("How does the {} {} affect the {} {}?", "Explain the {} of a {} {} near the {}.",
          "What is the best {} for a {} {} with {}?", "Why would a {} {} need a {} {}?")


def _question(rng: random.Random) -> str:
    form = rng.choice(_FORMS)
    return form.format(*(rng.choice(_VOCAB) for _ in range(4))) + f" (case {rng.getrandbits(40):x})"


def _body(text: str) -> dict[str, Any]:
    return {"model": "bench-model", "temperature": 0,
            "messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": text}]}


def _pct(values_ns: list[int]) -> dict[str, float]:
    arr = np.sort(np.asarray(values_ns, dtype=np.float64)) / 1_000.0
    return {"n": int(arr.size), "p50_us": round(float(np.percentile(arr, 50)), 1),
            "p90_us": round(float(np.percentile(arr, 90)), 1),
            "p99_us": round(float(np.percentile(arr, 99)), 1), "max_us": round(float(arr[-1]), 1)}


async def _timed(cache: ResponseCache, scope: CacheScope, bodies: list[dict[str, Any]],
                 expect: str) -> tuple[dict[str, float], int]:
    times: list[int] = []
    wrong = 0
    for b in bodies:
        t0 = time.perf_counter_ns()
        res = await cache.lookup(scope, b)
        times.append(time.perf_counter_ns() - t0)
        wrong += res.outcome != expect
    return _pct(times), wrong


async def worst_case(entries: int, lookups: int, dim: int) -> dict[str, Any]:
    """Every stored text a reordering of the same eight words: one signature group of ``entries``."""
    import itertools

    words = ("amber", "falcon", "harbor", "lantern", "meadow", "quartz", "timber", "walnut")
    scope = CacheScope("key:bench", "default", "bench-vm")
    cfg = CacheConfig(mode="semantic", max_entries=entries, embedder={"kind": "builtin", "dim": dim})
    cache = ResponseCache(cfg, HashingEmbedder(dim), clock=time.monotonic)
    answer = CachedAnswer(text="cached", finish_reason="stop")
    perms = itertools.permutations(words)
    stored = []
    for i in range(entries):
        # 8! = 40,320 orders x 3 endings covers 100,000 distinct texts
        text = " ".join(next(perms)) + ("?", ".", "!")[i // 40_320]
        if i % 40_320 == 40_319:
            perms = itertools.permutations(words)
        stored.append(text)
        await cache.store(scope, _body(text), answer)
    rng = random.Random(3)
    bodies = [_body(rng.choice(stored).rstrip("?.!") + " please?") for _ in range(lookups)]
    gc.collect()
    gc.freeze()
    pct, wrong = await _timed(cache, scope, bodies, "hit-semantic")
    gc.unfreeze()
    return {"entries": entries, "signature_groups": 1, "semantic_hit": {**pct, "unexpected_outcomes": wrong}}


async def run(entries: int, lookups: int, dim: int, seed: int, memory: bool = False) -> dict[str, Any]:
    rng = random.Random(seed)
    scope = CacheScope("key:bench", "default", "bench-vm")
    cfg = CacheConfig(mode="semantic", max_entries=entries, embedder={"kind": "builtin", "dim": dim})
    embedder = HashingEmbedder(dim)
    cache = ResponseCache(cfg, embedder, clock=time.monotonic)
    texts = [_question(rng) for _ in range(entries)]
    answer_text = "A reasonably long cached answer of a few sentences. " * 6

    proc = psutil.Process()
    gc.collect()
    rss0 = proc.memory_info().rss
    if memory:
        tracemalloc.start()
    t0 = time.perf_counter()
    for text in texts:
        # A distinct answer object per entry, as in real use (the text dominates memory).
        answer = CachedAnswer(text=answer_text + text[-10:], finish_reason="stop",
                              usage={"prompt_tokens": 40, "completion_tokens": 60, "total_tokens": 100})
        await cache.store(scope, _body(text), answer)
    fill_s = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[0] if memory else 0
    if memory:
        tracemalloc.stop()
    gc.collect()
    rss1 = proc.memory_info().rss
    stats = cache.stats()
    assert stats.entries == entries and stats.partitions == 1, stats

    picks = [rng.randrange(entries) for _ in range(lookups)]
    exact_bodies = [_body(texts[i]) for i in picks]
    # Lower-case + a politeness suffix: an exact miss that the guard accepts.
    semantic_bodies = [_body(texts[i].lower().rstrip("?.") + ", please?") for i in picks]
    fresh_rng = random.Random(seed + 1)
    miss_bodies = [_body("Tell me about the " + _question(fresh_rng)) for _ in range(lookups)]

    results: dict[str, Any] = {}
    for mode in ("gc_frozen", "gc_default"):
        if mode == "gc_frozen":
            gc.collect()
            gc.freeze()
        else:
            gc.unfreeze()
            gc.collect()
        phase: dict[str, Any] = {}
        for name, bodies, expect in (("exact_hit", exact_bodies, "hit-exact"),
                                     ("semantic_hit", semantic_bodies, "hit-semantic"),
                                     ("semantic_miss", miss_bodies, "miss")):
            pct, wrong = await _timed(cache, scope, bodies, expect)
            phase[name] = {**pct, "unexpected_outcomes": wrong}
        results[mode] = phase

    embed: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    for chars in (50, 200, 1000, 2000, 10_000):
        text = ("word " * (chars // 5 + 1))[:chars]
        ts = []
        for _ in range(200):
            t = time.perf_counter_ns()
            embedder.embed_sync(text)
            ts.append(time.perf_counter_ns() - t)
        embed[f"{chars}_chars"] = _pct(ts)
    hop = []
    for _ in range(200):
        t = time.perf_counter_ns()
        await loop.run_in_executor(None, int)
        hop.append(time.perf_counter_ns() - t)
    embed["thread_hop_noop"] = _pct(hop)

    return {
        "entries": entries, "lookups_per_phase": lookups, "dim": dim, "partitions": 1,
        "python": sys.version.split()[0], "numpy": np.__version__, "cpus": os.cpu_count(),
        "fill": {"seconds": round(fill_s, 2), "stores_per_s": round(entries / fill_s), "tracemalloc": memory},
        "memory": None if not memory else {
            "tracemalloc_bytes": traced, "rss_delta_bytes": rss1 - rss0,
            "vector_bytes": stats.vector_bytes,
            "bytes_per_entry_traced": round(traced / entries),
            "mib_per_100k_entries_traced": round(traced / entries * 100_000 / 2**20, 1),
            "mib_per_100k_entries_rss": round((rss1 - rss0) / entries * 100_000 / 2**20, 1),
            "answer_text_chars": len(answer_text) + 10,
        },
        "lookup": results,
        "embedder": embed,
        "targets": {"exact_p99_us": 1000, "semantic_p99_us": 2000},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=3000)
    ap.add_argument("--dim", type=int, default=CacheConfig().embedder.dim)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--memory", action="store_true", help="trace memory during the fill (about 5x slower)")
    ap.add_argument("--no-worst", action="store_true", help="skip the one-signature worst case")
    args = ap.parse_args(argv)
    result = asyncio.run(run(args.entries, args.lookups, args.dim, args.seed, args.memory))
    if not args.no_worst:
        result["worst_case_one_signature"] = asyncio.run(worst_case(args.entries, args.lookups, args.dim))
    result["load_average_1m_at_end"] = os.getloadavg()[0]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
