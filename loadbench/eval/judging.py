"""The judge's side of an evaluation that needs no network: blinding, prompts, reply parsing and
the two-order rule for pairwise verdicts. Pure.

Blinding: before any output reaches a judge, every target name, model name and listed provider
name (``strip_names``) is replaced by ``[model]``, case-insensitively and on word boundaries, so
neither a self-introduction ("As GPT-x, ...") nor a signature can steer the judge.

Single grading: all rubric criteria in one call; the judge replies with one JSON object, one
integer field per criterion (1 worst .. 5 best); a criterion's score is (s - 1) / 4 in [0, 1].
Pairwise: the judge sees answers A and B and replies {"winner": "A" | "B" | "tie"}; every pair
is judged in both orders (candidate first, then incumbent first) and the verdicts are mapped back
to targets; a disagreement between the two orders is a tie (MT-Bench's rule, Zheng et al. 2023).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loadbench.eval.criteria import RubricItem, extract_json

BLIND_TOKEN = "[model]"
SINGLE_MARK = "Grade the answer against the reference."
PAIR_MARK = "Compare two answers against the reference."


def blind(text: str, names: Iterable[str]) -> str:
    for name in sorted({n for n in names if n and n.strip()}, key=len, reverse=True):
        text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", BLIND_TOKEN, text, flags=re.IGNORECASE)
    return text


def single_prompt(rubric: Sequence[RubricItem], reference: str, answer: str, question: str) -> str:
    criteria = "\n".join(f"- {r.name}: {r.description}" for r in rubric)
    fields = ", ".join(f'"{r.name}": <1-5>' for r in rubric)
    return (f"{SINGLE_MARK} Score each criterion from 1 (worst) to 5 (best).\nCriteria:\n{criteria}\n"
            f"Reply with one JSON object only: {{{fields}}}\n\n<question>\n{question}\n</question>\n"
            f"<reference>\n{reference}\n</reference>\n<answer>\n{answer}\n</answer>")


def pair_prompt(reference: str, first: str, second: str, question: str) -> str:
    return (f"{PAIR_MARK} Which answer is better? Reply with one JSON object only: "
            '{"winner": "A" | "B" | "tie"}\n\n'
            f"<question>\n{question}\n</question>\n<reference>\n{reference}\n</reference>\n"
            f"<answer_a>\n{first}\n</answer_a>\n<answer_b>\n{second}\n</answer_b>")


def section(prompt: str, tag: str) -> str | None:
    m = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", prompt, re.DOTALL)
    return m.group(1) if m else None


def rubric_names(prompt: str) -> list[str]:
    block = prompt.split("Criteria:\n", 1)[-1].split("\nReply", 1)[0]
    return [line[2:].split(":", 1)[0] for line in block.splitlines() if line.startswith("- ")]


@dataclass(frozen=True, slots=True)
class Grades:
    scores: dict[str, float]  # criterion -> [0, 1]
    error: str = ""


def parse_grades(reply: str, rubric: Sequence[RubricItem]) -> Grades:
    ok, value = extract_json(reply)
    if not ok or not isinstance(value, dict):
        m = re.search(r"\{.*\}", reply, re.DOTALL)
        ok, value = extract_json(m.group(0)) if m else (False, None)
    if not ok or not isinstance(value, dict):
        return Grades({}, "judge reply is not a JSON object")
    out: dict[str, float] = {}
    for r in rubric:
        raw = value.get(r.name)
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not 1 <= raw <= 5:
            return Grades({}, f"judge reply has no 1-5 score for {r.name!r}")
        out[r.name] = (float(raw) - 1.0) / 4.0
    return Grades(out)


def parse_winner(reply: str) -> str:
    """"A", "B" or "tie" (anything unreadable counts as a tie)."""
    ok, value = extract_json(reply)
    if not ok:
        m = re.search(r"\{.*\}", reply, re.DOTALL)
        ok, value = extract_json(m.group(0)) if m else (False, None)
    winner = value.get("winner") if ok and isinstance(value, dict) else None
    return winner if winner in ("A", "B") else "tie"


def combine_orders(candidate: str, incumbent: str, first_order: str, second_order: str) -> tuple[str, str, str]:
    """Map both verdicts back to targets; (first, second, winner) where winner is the shared
    verdict or "tie". ``first_order`` judged (candidate=A, incumbent=B), ``second_order`` the swap."""
    first = {"A": candidate, "B": incumbent}.get(first_order, "tie")
    second = {"A": incumbent, "B": candidate}.get(second_order, "tie")
    return first, second, first if first == second else "tie"
