"""``loadbench dataset expand``: deterministic synthetic variations of a small seed set.

Each variation changes only the text the model is asked about (the last user message, or the
prompt) and keeps every ground-truth field. It is a new case with id ``<origin>~<variant>``,
``origin`` = the seed case's id, kind ``edge`` (a variation is a robustness check, never a
regression case) and the tag ``variant:<name>``. Variants:

    typo        swaps two adjacent letters in about one word in five (words of 4+ letters; at least one)
    case        upper case, lower case or title case (one per case, by seed)
    whitespace  doubled spaces, a leading newline and trailing spaces
    pad         irrelevant context sentences before the text, up to each of ``pad_to`` words
    format      the text quoted as "Customer message: ..." in a short template
Everything is a function of (seed, case id, variant): the same seed set expands to the same file.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import replace

from loadbench.errors import InputError
from loadbench.eval.dataset import Case

VARIANTS = ("typo", "case", "whitespace", "pad", "format")
FILLER = (
    "The weather report for the coast mentions light winds in the afternoon.",
    "Our office moved to the third floor last spring, next to the small kitchen.",
    "A reminder that the quarterly newsletter is published on the first Monday.",
    "The train timetable changes in December, with extra services on weekends.",
    "Several colleagues recommended the new bakery that opened near the station.",
    "The museum extended its opening hours during the summer festival.",
)
TEMPLATES = ('Customer message: "{text}"', "From the support inbox:\n\n{text}\n\n(end of message)",
             "Ticket text follows.\n---\n{text}\n---")


def _typo(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    eligible = [i for i, w in enumerate(words) if sum(ch.isalpha() for ch in w) >= 4]
    chosen = [i for i in eligible if rng.random() < 0.2] or ([rng.choice(eligible)] if eligible else [])
    for i in chosen:
        w = words[i]
        spots = [j for j in range(len(w) - 1) if w[j].isalpha() and w[j + 1].isalpha() and w[j] != w[j + 1]]
        if spots:
            j = rng.choice(spots)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def _case(text: str, rng: random.Random) -> str:
    return rng.choice((str.upper, str.lower, str.title))(text)


def _whitespace(text: str, rng: random.Random) -> str:
    return "\n" + "  ".join(text.split(" ")) + "   "


def _pad(text: str, rng: random.Random, words: int) -> str:
    filler: list[str] = []
    while len(" ".join(filler).split()) + len(text.split()) < words:
        filler.append(rng.choice(FILLER))
    return (" ".join(filler) + "\n\n" + text) if filler else text


def _format(text: str, rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(text=text)


def _with_text(case: Case, text: str, suffix: str) -> Case:
    messages = case.messages
    if messages is not None:
        idx = max(i for i, (role, _) in enumerate(messages) if role == "user") if any(
            r == "user" for r, _ in messages) else len(messages) - 1
        messages = tuple((r, text if i == idx else c) for i, (r, c) in enumerate(messages))
    return replace(case, id=f"{case.id}~{suffix}", kind="edge", tags=(*case.tags, f"variant:{suffix.split('-')[0]}"),
                   messages=messages, prompt=text if case.prompt is not None else None, origin=case.id, source="")


def expand(cases: Iterable[Case], variants: Sequence[str] = VARIANTS, pad_to: Sequence[int] = (200,),
           seed: int = 0, keep_originals: bool = True) -> list[Case]:
    out: list[Case] = []
    for case in cases:
        if keep_originals:
            out.append(case)
        text = case.user_text()
        for v in variants:
            rng = random.Random(f"{seed}:{case.id}:{v}")
            if v == "pad":
                out.extend(_with_text(case, _pad(text, rng, n), f"pad-{n}") for n in pad_to)
            elif v == "typo":
                out.append(_with_text(case, _typo(text, rng), v))
            elif v == "case":
                out.append(_with_text(case, _case(text, rng), v))
            elif v == "whitespace":
                out.append(_with_text(case, _whitespace(text, rng), v))
            elif v == "format":
                out.append(_with_text(case, _format(text, rng), v))
            else:
                raise InputError(f"unknown variant {v!r}; one of {', '.join(VARIANTS)}")
    return out
