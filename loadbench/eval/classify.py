"""Classification metrics from (true label, predicted label) pairs, one pair per scored output.

Per class c: TP = predicted c and true c, FP = predicted c and true not c, FN = true c and
predicted not c;
    precision = TP / (TP + FP)   recall = TP / (TP + FN)   F1 = 2TP / (2TP + FP + FN)
(0 when the denominator is 0). Macro P/R/F1 = the unweighted mean over the true classes.
A prediction that is no known label is counted under ``OTHER`` (an FP of no class, an FN of
the true one). The confusion matrix is counts[true][predicted].
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

OTHER = "(other)"


@dataclass(frozen=True, slots=True)
class ClassStats:
    label: str
    tp: int
    fp: int
    fn: int
    support: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else 0.0


@dataclass(frozen=True, slots=True)
class ClassificationReport:
    classes: tuple[ClassStats, ...]
    confusion: dict[str, dict[str, int]]
    accuracy: float
    n: int

    @property
    def macro_precision(self) -> float:
        return _mean([c.precision for c in self.classes])

    @property
    def macro_recall(self) -> float:
        return _mean([c.recall for c in self.classes])

    @property
    def macro_f1(self) -> float:
        return _mean([c.f1 for c in self.classes])

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n, "accuracy": round(self.accuracy, 6),
            "macro": {"precision": round(self.macro_precision, 6), "recall": round(self.macro_recall, 6),
                      "f1": round(self.macro_f1, 6)},
            "classes": {c.label: {"precision": round(c.precision, 6), "recall": round(c.recall, 6),
                                  "f1": round(c.f1, 6), "tp": c.tp, "fp": c.fp, "fn": c.fn,
                                  "support": c.support} for c in self.classes},
            "confusion": self.confusion,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ClassificationReport:
        classes = tuple(ClassStats(label, int(v["tp"]), int(v["fp"]), int(v["fn"]), int(v["support"]))
                        for label, v in obj["classes"].items())
        confusion = {str(t): {str(p): int(n) for p, n in row.items()} for t, row in obj["confusion"].items()}
        return cls(classes, confusion, float(obj["accuracy"]), int(obj["n"]))


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def classification_report(pairs: Iterable[tuple[str, str]]) -> ClassificationReport:
    pairs = list(pairs)
    labels = sorted({t for t, _ in pairs})
    known = set(labels)
    mapped = [(t, p if p in known else OTHER) for t, p in pairs]
    counts = Counter(mapped)
    classes = []
    for c in labels:
        tp = counts[(c, c)]
        fp = sum(n for (t, p), n in counts.items() if p == c and t != c)
        fn = sum(n for (t, p), n in counts.items() if t == c and p != c)
        classes.append(ClassStats(c, tp, fp, fn, tp + fn))
    confusion: dict[str, dict[str, int]] = {}
    for (t, p), n in sorted(counts.items()):
        confusion.setdefault(t, {})[p] = n
    correct = sum(n for (t, p), n in counts.items() if t == p)
    return ClassificationReport(tuple(classes), confusion, correct / len(mapped) if mapped else 0.0, len(mapped))
