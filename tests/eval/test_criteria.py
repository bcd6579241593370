"""Scorers against hand-checked outputs, and classification P/R/F1 against a hand count."""

from __future__ import annotations

import pytest

from loadbench.eval.classify import OTHER, classification_report
from loadbench.eval.criteria import Criterion, Output, list_match, normalize, schema_errors, score
from loadbench.eval.dataset import parse_case


def case(**kw: object) -> object:
    return parse_case({"id": "x", "prompt": "q", **kw}, "d.jsonl", 1)


def test_normalize_drops_case_space_quotes_and_final_punctuation() -> None:
    assert normalize('  "Billing."  ') == "billing"
    assert normalize("Two\n words!") == "two words"


@pytest.mark.parametrize(("crit", "kw", "text", "expected"), [
    (Criterion("e", "exact"), {"answer": "Paris"}, "paris.", 1.0),
    (Criterion("e", "exact"), {"answer": 42}, "42", 1.0),
    (Criterion("e", "exact"), {"answer": "Paris"}, "It is Paris", 0.0),
    (Criterion("c", "contains"), {"answer": "Paris"}, "It is Paris", 1.0),
    (Criterion("c", "contains", value="lyon"), {}, "It is Paris", 0.0),
    (Criterion("r", "regex", pattern=r"^\d{3}$"), {}, "123", 1.0),
    (Criterion("r", "regex"), {"pattern": "ok"}, "not"  , 0.0),
    (Criterion("j", "json_valid"), {}, '```json\n{"a": 1}\n```', 1.0),
    (Criterion("j", "json_valid"), {}, '{"a": 1', 0.0),
    (Criterion("n", "numeric", tolerance=0.5), {"answer": 10}, "about 10.4 units", 1.0),
    (Criterion("n", "numeric", rel_tolerance=0.01), {"answer": 1000}, "1,020", 0.0),
    (Criterion("l", "length", min=2, max=3), {}, "one two three", 1.0),
    (Criterion("l", "length", max=3), {}, "one two three four", 0.0),
    (Criterion("cl", "classification"), {"label": "billing"}, " Billing ", 1.0),
    (Criterion("cl", "classification"), {"label": "billing"}, "account", 0.0),
])
def test_deterministic_scorers(crit: Criterion, kw: dict, text: str, expected: float) -> None:
    assert score(crit, case(**kw), Output(text)).value == expected


def test_finish_reason_and_length_in_tokens() -> None:
    c = case()
    assert score(Criterion("f", "finish_reason"), c, Output("x", "stop")).passed
    assert not score(Criterion("f", "finish_reason"), c, Output("x", "length")).passed
    assert score(Criterion("l", "length", unit="tokens", max=5), c, Output("x", None, 5)).passed
    assert not score(Criterion("l", "length", unit="tokens", max=5), c, Output("x", None, 6)).passed


def test_json_schema_reports_each_violation() -> None:
    schema = {"type": "object", "required": ["a", "b"], "additionalProperties": False,
              "properties": {"a": {"type": "integer", "minimum": 0},
                             "b": {"type": "array", "items": {"type": "string"}}}}
    assert schema_errors({"a": 1, "b": ["x"]}, schema) == []
    errors = schema_errors({"a": -1, "b": [3], "c": True}, schema)
    assert errors == ["$.a: below minimum 0", "$.b[0]: expected string", "$.c: not allowed"]
    crit = Criterion("s", "json_schema", schema=schema)
    assert score(crit, case(), Output('{"a": true, "b": []}')).value == 0.0  # a bool is not an integer


def test_json_fields_per_field_and_list_modes() -> None:
    c = case(fields={"name": "Ada", "amount": 42.5, "items": ["pen", "notebook"]})
    got = '{"name": "ada", "amount": 42.5, "items": ["notebook"]}'
    s = score(Criterion("f", "json_fields", list_mode="same_elements"), c, Output(got))
    assert s.parts == {"name": 1.0, "amount": 1.0, "items": 0.5}
    assert s.value == pytest.approx(2.5 / 3)
    assert score(Criterion("f", "json_fields", list_mode="subset"), c, Output(got)).parts["items"] == 1.0
    assert score(Criterion("f", "json_fields", list_mode="superset"), c, Output(got)).parts["items"] == 0.5
    assert score(Criterion("f", "json_fields", aggregator="all"), c, Output(got)).value == 0.0
    assert score(Criterion("f", "json_fields"), c, Output("not json")).value == 0.0
    assert list_match([1, 2], [2, 1], "ordered") == 0.0
    assert list_match([1, 2], [1, 2], "ordered") == 1.0


def test_classification_matches_a_hand_count() -> None:
    # truth -> predicted, 10 outputs:
    #   a: a a a b      b: b b a      c: c x(unknown)  d: (never predicted)  -> counted by hand below
    pairs = [("a", "a"), ("a", "a"), ("a", "a"), ("a", "b"), ("b", "b"), ("b", "b"), ("b", "a"),
             ("c", "c"), ("c", "x"), ("d", "a")]
    r = classification_report(pairs)
    by = {c.label: c for c in r.classes}
    # a: TP 3, FP 2 (b->a, d->a), FN 1 -> P 3/5, R 3/4, F1 6/9
    assert (by["a"].tp, by["a"].fp, by["a"].fn) == (3, 2, 1)
    assert by["a"].precision == pytest.approx(0.6) and by["a"].recall == pytest.approx(0.75)
    assert by["a"].f1 == pytest.approx(6 / 9)
    # b: TP 2, FP 1 (a->b), FN 1 -> P 2/3, R 2/3
    assert (by["b"].tp, by["b"].fp, by["b"].fn) == (2, 1, 1)
    # c: TP 1, FP 0, FN 1 ("x" is no label: OTHER) -> P 1, R 1/2, F1 2/3
    assert by["c"].precision == 1.0 and by["c"].recall == 0.5 and by["c"].f1 == pytest.approx(2 / 3)
    # d: TP 0 -> all 0
    assert by["d"].f1 == 0.0
    assert r.macro_precision == pytest.approx((0.6 + 2 / 3 + 1.0 + 0.0) / 4)
    assert r.macro_recall == pytest.approx((0.75 + 2 / 3 + 0.5 + 0.0) / 4)
    assert r.macro_f1 == pytest.approx((6 / 9 + 2 / 3 + 2 / 3 + 0.0) / 4)
    assert r.accuracy == pytest.approx(6 / 10)
    assert r.confusion["c"] == {"c": 1, OTHER: 1}
    assert classification_report(pairs).to_json() == type(r).from_json(r.to_json()).to_json()
