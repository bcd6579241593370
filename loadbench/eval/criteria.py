"""Rubric criteria and their scorers: each criterion scores one output on its own, in [0, 1].

    exact           1 when the normalised output equals the normalised ``answer``
    contains        1 when the normalised output contains ``value`` (or the case's ``answer``)
    regex           1 when ``pattern`` (or the case's ``pattern``) matches anywhere (re.search)
    json_valid      1 when the output (optionally inside a ``` fence) parses as JSON
    json_schema     1 when it parses and validates against ``schema`` (a JSON-Schema subset:
                    type, properties, required, items, enum, additionalProperties, min/max)
    json_fields     per expected field 1/0 (lists by ``list_mode``); the score is their average,
                    or with ``aggregator: all`` 1 only when every field matches
    classification  1 when the normalised output is the case's ``label`` (P/R/F1 in ``classify``)
    numeric         1 when |x - answer| <= tolerance + rel_tolerance·|answer| (first number in the output)
    length          1 when the output's words (or completion tokens) are within [min, max]
    finish_reason   1 when the finish reason is ``expect`` (default "stop")
    judge           an LLM judge's rubric, scored by ``loadbench.eval.judge`` (not here)
    code_tests      the case's tests run against the generated code (``loadbench.eval.codeexec``)
    agent           an agent task's outcome (``loadbench.eval.agentscore``; set by the suite's
                    ``agent:`` block, never written in a suite)
Normalisation: Unicode NFKC, lower case, whitespace collapsed, surrounding quotes and trailing
punctuation removed. An output passes a criterion when its score >= the criterion's threshold.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from loadbench.errors import InputError

CriterionType = Literal["exact", "contains", "regex", "json_valid", "json_schema", "json_fields",
                        "classification", "numeric", "length", "finish_reason", "judge", "code_tests", "agent"]
CRITERION_TYPES: tuple[str, ...] = CriterionType.__args__  # type: ignore[attr-defined]
ListMode = Literal["ordered", "same_elements", "subset", "superset"]

# The ground truth each criterion type needs on every case it scores (None: nothing or optional).
NEEDS: dict[str, str | None] = {
    "exact": "answer", "contains": None, "regex": None, "json_valid": None, "json_schema": None,
    "json_fields": "fields", "classification": "label", "numeric": "answer", "length": None,
    "finish_reason": None, "judge": "reference", "code_tests": "tests", "agent": None,
}
LATE_TYPES = frozenset({"judge", "code_tests", "agent"})  # scored outside this module


@dataclass(frozen=True, slots=True)
class RubricItem:
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    type: str
    weight: float = 1.0
    threshold: float = 1.0
    value: str | None = None
    pattern: str | None = None
    schema: dict[str, Any] | None = None
    list_mode: ListMode = "same_elements"
    aggregator: Literal["average", "all"] = "average"
    tolerance: float = 0.0
    rel_tolerance: float = 0.0
    min: int | None = None
    max: int | None = None
    unit: Literal["words", "tokens"] = "words"
    expect: str = "stop"
    rubric: tuple[RubricItem, ...] = ()
    k: int = 1  # code_tests: pass@k

    def needs(self) -> str | None:
        if self.type == "contains" and self.value is None:
            return "answer"
        if self.type == "regex" and self.pattern is None:
            return "pattern"
        return NEEDS[self.type]


@dataclass(frozen=True, slots=True)
class Output:
    """What a scorer sees of one call."""

    text: str
    finish_reason: str | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Score:
    value: float
    passed: bool
    detail: str = ""
    parts: dict[str, float] = field(default_factory=dict)  # per field / rubric item

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": round(self.value, 6), "passed": self.passed}
        if self.detail:
            out["detail"] = self.detail
        if self.parts:
            out["parts"] = {k: round(v, 6) for k, v in self.parts.items()}
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Score:
        return cls(float(obj["value"]), bool(obj["passed"]), str(obj.get("detail", "")),
                   {str(k): float(v) for k, v in obj.get("parts", {}).items()})


_QUOTES = "\"'`“”‘’"


def normalize(text: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return text.strip(_QUOTES).rstrip(".!?;:,").strip(_QUOTES).strip()


_FENCE = re.compile(r"```(?:[a-zA-Z0-9_+-]*)\n(.*?)```", re.DOTALL)


def extract_json(text: str) -> tuple[bool, Any]:
    """(parsed, value): the output as JSON, or the first fenced block as JSON."""
    candidates = [text.strip()]
    m = _FENCE.search(text)
    if m:
        candidates.insert(0, m.group(1).strip())
    for cand in candidates:
        try:
            return True, orjson.loads(cand)
        except orjson.JSONDecodeError:
            continue
    return False, None


def _binary(ok: bool, threshold: float, detail: str = "") -> Score:
    value = 1.0 if ok else 0.0
    return Score(value, value >= threshold, detail)


def _answer_text(answer: str | int | float | None) -> str:
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    return "" if answer is None else str(answer)


_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


def first_number(text: str) -> float | None:
    m = _NUMBER.search(text)
    return float(m.group(0).replace(",", "")) if m else None


def _canon(value: Any) -> Any:
    if isinstance(value, str):
        return normalize(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canon(v) for v in value]
    return value


def _key(value: Any) -> bytes:
    return orjson.dumps(_canon(value), option=orjson.OPT_SORT_KEYS)


def list_match(got: list[Any], want: list[Any], mode: ListMode) -> float:
    """Share of matching elements under ``mode`` (1.0 = full match)."""
    if mode == "ordered":
        if not got and not want:
            return 1.0
        same = sum(1 for a, b in zip(got, want, strict=False) if _key(a) == _key(b))
        return same / max(len(got), len(want))
    g, w = Counter(_key(x) for x in got), Counter(_key(x) for x in want)
    common = sum((g & w).values())
    if mode == "subset":  # every output element must be expected
        return 1.0 if not got else common / sum(g.values())
    if mode == "superset":  # every expected element must be in the output
        return 1.0 if not want else common / sum(w.values())
    union = sum((g | w).values())
    return 1.0 if union == 0 else common / union


def json_field_scores(got: Any, want: dict[str, Any], mode: ListMode) -> dict[str, float]:
    if not isinstance(got, dict):
        return {k: 0.0 for k in want}
    out: dict[str, float] = {}
    for key, expected in want.items():
        if key not in got:
            out[key] = 0.0
        elif isinstance(expected, list) and isinstance(got[key], list):
            out[key] = list_match(got[key], expected, mode)
        else:
            out[key] = 1.0 if _key(got[key]) == _key(expected) else 0.0
    return out


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,), "null": (type(None),),
    "integer": (int,), "number": (int, float),
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Violations of a JSON-Schema subset (enough for format compliance; no $ref)."""
    errors: list[str] = []
    kind = schema.get("type")
    if isinstance(kind, str):
        ok_types = _JSON_TYPES.get(kind, (object,))
        if not isinstance(value, ok_types) or (kind in ("integer", "number") and isinstance(value, bool)):
            return [f"{path}: expected {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: not one of {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value:
                errors.append(f"{path}.{req}: required")
        for key, sub in props.items():
            if key in value:
                errors.extend(schema_errors(value[key], sub, f"{path}.{key}"))
        if schema.get("additionalProperties") is False:
            errors.extend(f"{path}.{k}: not allowed" for k in value if k not in props)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            errors.extend(schema_errors(item, schema["items"], f"{path}[{i}]"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: below minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: above maximum {schema['maximum']}")
    if isinstance(value, str | list):
        if "minLength" in schema and isinstance(value, str) and len(value) < schema["minLength"]:
            errors.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and isinstance(value, str) and len(value) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']}")
    return errors


def score(criterion: Criterion, case: Any, out: Output) -> Score:
    """Score one output. ``case`` is a ``dataset.Case`` (typed loosely to keep this module flat)."""
    c, t = criterion, criterion.threshold
    text = out.text
    if c.type == "exact":
        return _binary(normalize(text) == normalize(_answer_text(case.answer)), t)
    if c.type == "contains":
        needle = c.value if c.value is not None else _answer_text(case.answer)
        return _binary(normalize(needle) in normalize(text), t)
    if c.type == "regex":
        pattern = c.pattern if c.pattern is not None else case.pattern
        return _binary(re.search(pattern, text) is not None, t)
    if c.type == "json_valid":
        return _binary(extract_json(text)[0], t)
    if c.type == "json_schema":
        parsed, value = extract_json(text)
        if not parsed:
            return _binary(False, t, "not JSON")
        errors = schema_errors(value, c.schema or {})
        return _binary(not errors, t, "; ".join(errors[:3]))
    if c.type == "json_fields":
        parsed, value = extract_json(text)
        parts = json_field_scores(value if parsed else None, case.fields, c.list_mode)
        if c.aggregator == "all":
            v = 1.0 if parts and all(p == 1.0 for p in parts.values()) else 0.0
        else:
            v = sum(parts.values()) / len(parts) if parts else 1.0
        return Score(v, v >= t, "" if parsed else "not JSON", parts)
    if c.type == "classification":
        predicted = normalize(text)
        return _binary(predicted == normalize(case.label), t, predicted)
    if c.type == "numeric":
        got = first_number(text)
        want = float(case.answer) if isinstance(case.answer, int | float) else first_number(str(case.answer))
        if got is None or want is None:
            return _binary(False, t, "no number")
        return _binary(math.fabs(got - want) <= c.tolerance + c.rel_tolerance * math.fabs(want), t, f"{got:g}")
    if c.type == "length":
        n = out.completion_tokens if c.unit == "tokens" else len(text.split())
        if n is None:
            return _binary(False, t, "no token count")
        ok = (c.min is None or n >= c.min) and (c.max is None or n <= c.max)
        return _binary(ok, t, str(n))
    if c.type == "finish_reason":
        return _binary(out.finish_reason == c.expect, t, str(out.finish_reason))
    raise InputError(f"criterion {c.name!r}: {c.type} is scored by the judge or the code runner, not here")
