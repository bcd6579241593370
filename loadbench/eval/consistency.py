"""Agreement of one case's repeats (n outputs of one target). Pure.

    pass_rate        c / n (c = accepted repeats)
    pass^k, pass@k   stats.pass_hat_k / stats.pass_at_k with k = the suite's repeats
    flip             1 when 0 < c < n (passes in some repeats, fails in others)
    spread           max - min of the repeats' quality scores
    json_valid       share of repeats whose output parses as JSON
    key_agreement    mean over pairs of parsed outputs of Jaccard(key set a, key set b)
    field_agreement  mean over pairs and over the union of their keys of [a[k] == b[k]]
                     (values compared after canonical JSON encoding)
    distinct         number of distinct normalised outputs
    text_similarity  mean over pairs of Jaccard(word set a, word set b) of normalised outputs
    pair_agreement   mean over pairs of [normalised a == normalised b] (for labels: label
                     agreement; its expectation is c² + (1 - c²)·s for the mock, docs/eval.md)
Pairs are unordered pairs of distinct repeats; a case with one repeat has no pairs (NaN).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from loadbench.eval.criteria import extract_json, normalize
from loadbench.eval.stats import pass_at_k, pass_hat_k


@dataclass(frozen=True, slots=True)
class CaseConsistency:
    case_id: str
    n: int
    passes: int
    pass_hat_k: float
    pass_at_k: float
    flip: bool
    spread: float
    json_valid: float
    key_agreement: float
    field_agreement: float
    distinct: int
    text_similarity: float
    pair_agreement: float


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _jaccard(a: set[str], b: set[str]) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def case_consistency(case_id: str, texts: Sequence[str], accepted: Sequence[bool], quality: Sequence[float],
                     k: int) -> CaseConsistency:
    n, c = len(texts), sum(accepted)
    k = min(k, n)
    norm = [normalize(t) for t in texts]
    pairs = list(itertools.combinations(range(n), 2))
    parsed = [extract_json(t) for t in texts]
    objs = [v for ok, v in parsed if ok and isinstance(v, dict)]
    obj_pairs = list(itertools.combinations(objs, 2))
    field_scores = []
    for a, b in obj_pairs:
        keys = set(a) | set(b)
        if keys:
            field_scores.append(sum(1.0 for key in keys if key in a and key in b and
                                    orjson.dumps(a[key], option=orjson.OPT_SORT_KEYS)
                                    == orjson.dumps(b[key], option=orjson.OPT_SORT_KEYS)) / len(keys))
    return CaseConsistency(
        case_id=case_id, n=n, passes=c, pass_hat_k=pass_hat_k(n, c, k), pass_at_k=pass_at_k(n, c, k),
        flip=0 < c < n, spread=(max(quality) - min(quality)) if quality else math.nan,
        json_valid=_mean([1.0 if ok else 0.0 for ok, _ in parsed]),
        key_agreement=_mean([_jaccard(set(a), set(b)) for a, b in obj_pairs]),
        field_agreement=_mean(field_scores), distinct=len(set(norm)),
        text_similarity=_mean([_jaccard(set(norm[i].split()), set(norm[j].split())) for i, j in pairs]),
        pair_agreement=_mean([1.0 if norm[i] == norm[j] else 0.0 for i, j in pairs]))
