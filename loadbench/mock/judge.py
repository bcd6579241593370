"""``loadbench mock --judge``: a judge with known behaviour, to prove the blinding works.

It reads the prompts of ``loadbench.eval.judging`` and scores an answer by its word overlap with
the reference: similarity = F1 of the normalised word multisets, grade = 1 + round(4·similarity)
for every rubric criterion. Pairwise: the answer with the higher similarity wins; within 0.02 it
is a tie. Biases (seeded hash draws, like the answers):
    --judge-position-bias P   with probability P the verdict is "A" (the first answer) whatever
                              the answers are
    --judge-name-bias NAME    an answer that mentions NAME gets +0.5 similarity (pairwise) and
                              +1 grade (single), which only a judge that sees the name can give
"""

from __future__ import annotations

import re
from collections import Counter

import orjson

from loadbench.eval.criteria import normalize
from loadbench.eval.judging import PAIR_MARK, SINGLE_MARK, rubric_names, section
from loadbench.mock.draw import unit
from loadbench.mock.settings import MockSettings

TIE_WITHIN = 0.02


def similarity(answer: str, reference: str) -> float:
    a = Counter(re.findall(r"\w+", normalize(answer)))
    b = Counter(re.findall(r"\w+", normalize(reference)))
    common = sum((a & b).values())
    if not a or not b or not common:
        return 0.0
    p, r = common / sum(a.values()), common / sum(b.values())
    return 2 * p * r / (p + r)


class MockJudge:
    def __init__(self, settings: MockSettings) -> None:
        self.s = settings
        self.seen: dict[str, int] = {}

    def _mentions(self, text: str) -> bool:
        name = self.s.judge_name_bias
        return bool(name) and name.lower() in text.lower()

    def reply(self, prompt: str) -> str | None:
        """The judge's verdict for a judge prompt (a request's question), or None when it is not one."""
        if SINGLE_MARK in prompt:
            return self._grade(prompt)
        if PAIR_MARK in prompt:
            return self._pair(prompt)
        return None

    def _grade(self, prompt: str) -> str:
        answer, reference = section(prompt, "answer") or "", section(prompt, "reference") or ""
        grade = 1 + round(4 * similarity(answer, reference))
        if self._mentions(answer):
            grade = min(5, grade + 1)
        return orjson.dumps({name: grade for name in rubric_names(prompt)}).decode()

    def _pair(self, prompt: str) -> str:
        n = self.seen.get(prompt, 0)
        self.seen[prompt] = n + 1
        if unit(self.s.seed, prompt, n, "position") < self.s.judge_position_bias:
            return '{"winner": "A"}'
        reference = section(prompt, "reference") or ""
        a, b = section(prompt, "answer_a") or "", section(prompt, "answer_b") or ""
        sa = similarity(a, reference) + (0.5 if self._mentions(a) else 0.0)
        sb = similarity(b, reference) + (0.5 if self._mentions(b) else 0.0)
        if abs(sa - sb) <= TIE_WITHIN:
            return '{"winner": "tie"}'
        return '{"winner": "A"}' if sa > sb else '{"winner": "B"}'
