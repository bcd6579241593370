"""Precision and recall of the semantic cache on labelled request pairs.

Each pair (``a``, ``b``, expect hit|miss) runs through the real ``ResponseCache``: ``a`` is stored
in a scope of its own, then ``b`` is looked up. A hit on an ``expect: hit`` pair is a true
positive, a hit on an ``expect: miss`` pair a false hit (the expensive error).

    python -m loadbench.cache.evaluate                      # scenarios/cache-eval.jsonl, threshold 0.9
    python -m loadbench.cache.evaluate --split test --json bench/out/cache-eval.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadbench.cache.answer import CachedAnswer
from loadbench.cache.cache import ResponseCache
from loadbench.cache.config import CacheConfig
from loadbench.cache.embedder import Embedder, HashingEmbedder
from loadbench.cache.headers import CacheScope

DEFAULT_PAIRS = Path(__file__).resolve().parents[2] / "scenarios" / "cache-eval.jsonl"
THRESHOLDS = (0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


@dataclass(slots=True)
class Pair:
    id: str
    kind: str
    a: str
    b: str
    expect: str  # "hit" | "miss"
    split: str = "all"


@dataclass(slots=True)
class EvalResult:
    threshold: float
    guard: bool
    pairs: int
    true_hits: int
    false_hits: int
    missed: int  # expect hit, got miss
    true_misses: int
    false_hits_by_kind: dict[str, int] = field(default_factory=dict)
    false_hit_ids: list[str] = field(default_factory=list)
    missed_ids: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        hits = self.true_hits + self.false_hits
        return self.true_hits / hits if hits else None

    @property
    def recall(self) -> float | None:
        positives = self.true_hits + self.missed
        return self.true_hits / positives if positives else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None or p + r == 0:
            return None
        return 2 * p * r / (p + r)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


def load_pairs(path: Path | str = DEFAULT_PAIRS, split: str = "all") -> list[Pair]:
    pairs = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                pair = Pair(**json.loads(line))
                if split in ("all", pair.split):
                    pairs.append(pair)
    return pairs


def _body(text: str) -> dict[str, Any]:
    return {"model": "eval-model", "temperature": 0,
            "messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": text}]}


async def evaluate(pairs: Sequence[Pair], *, threshold: float = 0.9, guard: bool = True,
                   embedder: Embedder | None = None, config: CacheConfig | None = None) -> EvalResult:
    base = config or CacheConfig(mode="semantic")
    cfg = base.with_overrides({"mode": "semantic", "similarity_threshold": threshold,
                               "near_miss_guard": guard})
    cache = ResponseCache(cfg, embedder or HashingEmbedder(), clock=lambda: 0.0)
    answer = CachedAnswer(text="cached answer", finish_reason="stop",
                          usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12})
    result = EvalResult(threshold=threshold, guard=guard, pairs=len(pairs), true_hits=0, false_hits=0,
                        missed=0, true_misses=0)
    by_kind: Counter[str] = Counter()
    for pair in pairs:
        scope = CacheScope(tenant=f"eval:{pair.id}", namespace="eval", virtual_model="eval")
        if not await cache.store(scope, _body(pair.a), answer):
            raise RuntimeError(f"pair {pair.id}: store refused")
        hit = (await cache.lookup(scope, _body(pair.b))).hit
        if pair.expect == "hit":
            if hit:
                result.true_hits += 1
            else:
                result.missed += 1
                result.missed_ids.append(pair.id)
        elif hit:
            result.false_hits += 1
            by_kind[pair.kind] += 1
            result.false_hit_ids.append(pair.id)
        else:
            result.true_misses += 1
    result.false_hits_by_kind = dict(by_kind)
    return result


def _fmt(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m loadbench.cache.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default=str(DEFAULT_PAIRS))
    ap.add_argument("--split", default="all", choices=["all", "dev", "test", "fresh"])
    ap.add_argument("--threshold", type=float, default=CacheConfig().similarity_threshold)
    ap.add_argument("--dim", type=int, default=128, help="built-in embedder dimension")
    ap.add_argument("--json", dest="json_out", default=None, help="also write the figures here")
    ap.add_argument("--verbose", action="store_true", help="list the ids of false hits and misses")
    args = ap.parse_args(argv)

    pairs = load_pairs(args.pairs, args.split)
    kinds = Counter(p.kind for p in pairs)
    embedder = HashingEmbedder(args.dim)

    async def run() -> tuple[EvalResult, list[EvalResult]]:
        main_result = await evaluate(pairs, threshold=args.threshold, embedder=embedder)
        table = [await evaluate(pairs, threshold=t, guard=g, embedder=embedder)
                 for g in (True, False) for t in THRESHOLDS]
        return main_result, table

    result, table = asyncio.run(run())
    print(f"pairs: {len(pairs)} ({args.split}) {dict(kinds)}; built-in embedder dim={args.dim}")
    print(f"threshold {args.threshold} with guard: precision {_fmt(result.precision)} "
          f"recall {_fmt(result.recall)} F1 {_fmt(result.f1)} "
          f"(true hits {result.true_hits}, false hits {result.false_hits}, missed {result.missed})")
    if args.verbose:
        print("  false hits:", result.false_hit_ids)
        print("  missed:", result.missed_ids)
    print(f"{'guard':>5} {'threshold':>9} {'precision':>9} {'recall':>7} {'F1':>6} {'false hits':>10}"
          "  by kind")
    for r in table:
        print(f"{'on' if r.guard else 'off':>5} {r.threshold:>9.2f} {_fmt(r.precision):>9} "
              f"{_fmt(r.recall):>7} {_fmt(r.f1):>6} {r.false_hits:>10}  {r.false_hits_by_kind}")
    if args.json_out:
        out = {"pairs_file": args.pairs, "split": args.split, "dim": args.dim, "kinds": dict(kinds),
               "result": result.as_dict(), "table": [r.as_dict() for r in table]}
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
