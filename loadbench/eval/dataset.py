"""Evaluation datasets: JSONL cases with ground truth, the dataset hash, and case selection.

One case per line:
    id          unique string (required)
    kind        representative | edge | regression | probe (default representative)
    tags        list of strings
    messages    [{"role": ..., "content": ...}, ...]   or   prompt: "..."   (exactly one)
    answer      expected text or number (exact, contains, numeric)
    label       expected class (classification)
    fields      expected JSON object (json_fields)
    reference   reference text for a judge
    pattern     a regex the output must match (regex)
    tests       Python test code run against generated code (code_tests)
    max_tokens  per-case output limit; origin: the seed case a variation was made from
Blank lines are skipped; every error names the file and the 1-based line.

The dataset hash is SHA-256 over the canonical JSON of the cases in file order, so it changes
when any case changes and not when only whitespace or key order in the file does.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import orjson

from loadbench.errors import ConfigError

Kind = Literal["representative", "edge", "regression", "probe"]
KINDS: tuple[Kind, ...] = ("representative", "edge", "regression", "probe")
_KEYS = frozenset({"id", "kind", "tags", "messages", "prompt", "answer", "label", "fields", "reference",
                   "pattern", "tests", "max_tokens", "origin", "weight"})
GROUND_TRUTH = ("answer", "label", "fields", "reference", "pattern", "tests")


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    kind: Kind
    tags: tuple[str, ...]
    messages: tuple[tuple[str, str], ...] | None
    prompt: str | None
    answer: str | int | float | None = None
    label: str | None = None
    fields: dict[str, Any] | None = None
    reference: str | None = None
    pattern: str | None = None
    tests: str | None = None
    max_tokens: int | None = None
    origin: str | None = None
    weight: float = 1.0
    source: str = ""  # "file:line", for error messages about this case

    def has(self, truth: str) -> bool:
        return getattr(self, truth) is not None

    def user_text(self) -> str:
        """The text the model is asked about: the last user message, or the prompt."""
        if self.prompt is not None:
            return self.prompt
        assert self.messages is not None
        users = [c for r, c in self.messages if r == "user"]
        return users[-1] if users else self.messages[-1][1]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind}
        if self.tags:
            out["tags"] = list(self.tags)
        if self.messages is not None:
            out["messages"] = [{"role": r, "content": c} for r, c in self.messages]
        else:
            out["prompt"] = self.prompt
        for name in (*GROUND_TRUTH, "max_tokens", "origin"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.weight != 1.0:
            out["weight"] = self.weight
        return out


@dataclass(frozen=True, slots=True)
class Dataset:
    path: str
    cases: tuple[Case, ...]
    sha256: str = field(default="")

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(c.id for c in self.cases)


def _bad(path: str, line: int, fld: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(path, f"line {line}: {fld}", problem, fix)


def _messages(raw: object, path: str, line: int) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or not raw:
        raise _bad(path, line, "messages", "must be a non-empty list", 'e.g. [{"role": "user", "content": "..."}]')
    out: list[tuple[str, str]] = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise _bad(path, line, f"messages[{i}]", "must be an object with string role and content",
                       'e.g. {"role": "user", "content": "..."}')
        out.append((m["role"], m["content"]))
    return tuple(out)


def parse_case(obj: object, path: str, line: int) -> Case:
    if not isinstance(obj, dict):
        raise _bad(path, line, "(line)", "is not a JSON object", 'each line is one case like {"id": "c1", ...}')
    unknown = sorted(set(obj) - _KEYS)
    if unknown:
        raise _bad(path, line, unknown[0], "unknown key", "allowed keys: " + ", ".join(sorted(_KEYS)))
    cid = obj.get("id")
    if not isinstance(cid, str) or not cid:
        raise _bad(path, line, "id", "required non-empty string is missing", 'add "id": "unique-name"')
    kind = obj.get("kind", "representative")
    if kind not in KINDS:
        raise _bad(path, line, "kind", f"{kind!r} is not a case kind", "one of " + ", ".join(KINDS))
    tags = obj.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _bad(path, line, "tags", "must be a list of strings", 'e.g. "tags": ["billing"]')
    has_messages, has_prompt = "messages" in obj, "prompt" in obj
    if has_messages == has_prompt:
        raise _bad(path, line, "messages", "a case needs exactly one of messages or prompt",
                   "give the input as messages (chat) or prompt (completions)")
    messages = _messages(obj["messages"], path, line) if has_messages else None
    prompt = obj.get("prompt")
    if has_prompt and not isinstance(prompt, str):
        raise _bad(path, line, "prompt", "must be a string", 'e.g. "prompt": "..."')
    answer = obj.get("answer")
    if answer is not None and (isinstance(answer, bool) or not isinstance(answer, str | int | float)):
        raise _bad(path, line, "answer", "must be a string or a number", 'e.g. "answer": "42"')
    for name in ("label", "reference", "pattern", "tests", "origin"):
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            raise _bad(path, line, name, "must be a string", f'e.g. "{name}": "..."')
    fields = obj.get("fields")
    if fields is not None and not isinstance(fields, dict):
        raise _bad(path, line, "fields", "must be a JSON object", 'e.g. "fields": {"name": "Ada"}')
    max_tokens = obj.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _bad(path, line, "max_tokens", "must be an integer >= 1", 'e.g. "max_tokens": 256')
    weight = obj.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise _bad(path, line, "weight", "must be a number > 0", 'e.g. "weight": 2')
    return Case(
        id=cid, kind=cast(Kind, kind), tags=tuple(tags), messages=messages, prompt=prompt,
        answer=answer, label=obj.get("label"),
        fields=fields, reference=obj.get("reference"), pattern=obj.get("pattern"), tests=obj.get("tests"),
        max_tokens=max_tokens, origin=obj.get("origin"), weight=float(weight), source=f"{path}:{line}")


def parse_dataset(text: str, path: str) -> Dataset:
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise _bad(path, n, "(line)", f"is not valid JSON: {exc}", "each line must be one JSON object") from None
        case = parse_case(obj, path, n)
        if case.id in seen:
            raise _bad(path, n, "id", f"duplicate id {case.id!r} (first on line {seen[case.id]})", "ids must be unique")
        seen[case.id] = n
        cases.append(case)
    if not cases:
        raise ConfigError(path, "(file)", "the dataset has no cases", "add one JSON case per line")
    return Dataset(path=path, cases=tuple(cases), sha256=dataset_hash(cases))


def dataset_hash(cases: Iterable[Case]) -> str:
    h = hashlib.sha256()
    for case in cases:
        h.update(orjson.dumps(case.to_json(), option=orjson.OPT_SORT_KEYS))
        h.update(b"\n")
    return h.hexdigest()


def read_text(path: Path, what: str, fix: str = "check the path") -> str:
    """A config file's text; a missing or unreadable file is a ConfigError naming ``what`` it is."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "(file)", f"{what} not found", fix) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "(file)", f"cannot read: {exc}", "check the path and encoding") from None


def load_dataset(path: Path) -> Dataset:
    return parse_dataset(read_text(path, "dataset file"), str(path))


@dataclass(frozen=True, slots=True)
class Selection:
    """Which cases to run: ``--filter kind=regression,tag=billing`` (AND), ``--sample N --seed S``,
    ``--failing-from RUN_DIR`` (ids of cases not accepted in every repeat there)."""

    filters: tuple[tuple[str, str], ...] = ()
    sample: int | None = None
    seed: int = 0
    only_ids: frozenset[str] | None = None


def parse_filter(text: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or key not in ("kind", "tag", "id") or not value:
            raise ConfigError("--filter", part, "is not key=value with key kind, tag or id",
                              "e.g. --filter kind=regression,tag=billing")
        if key == "kind" and value not in KINDS:
            raise ConfigError("--filter", part, f"unknown kind {value!r}", "one of " + ", ".join(KINDS))
        out.append((key, value))
    return tuple(out)


def _matches(case: Case, key: str, value: str) -> bool:
    if key == "kind":
        return case.kind == value
    if key == "tag":
        return value in case.tags
    return case.id == value


def select(cases: Sequence[Case], selection: Selection) -> tuple[Case, ...]:
    chosen = [c for c in cases if all(_matches(c, k, v) for k, v in selection.filters)]
    if selection.only_ids is not None:
        chosen = [c for c in chosen if c.id in selection.only_ids]
    if selection.sample is not None and selection.sample < len(chosen):
        picked = set(random.Random(f"sample:{selection.seed}").sample(range(len(chosen)), selection.sample))
        chosen = [c for i, c in enumerate(chosen) if i in picked]  # keep file order
    return tuple(chosen)
