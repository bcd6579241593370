"""Pure pieces: dataset parsing, hash and selection; suite line numbers; expansion; pricing;
the decision rule's floors; the scorecard's JSON round trip."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from loadbench.config.pricing import parse_pricing
from loadbench.errors import ConfigError
from loadbench.eval.dataset import Selection, load_dataset, parse_dataset, parse_filter, select
from loadbench.eval.decision import PairedCases, decide
from loadbench.eval.expand import expand
from loadbench.eval.yamlfile import yaml_line
from loadbench.pricing import Usage, call_cost, stale_days
from loadbench.protocol.openai import usage_from
from tests.eval.conftest import label_dataset

REPO = Path(__file__).resolve().parents[2]


def test_hash_ignores_key_order_but_not_content(tmp_path: Path) -> None:
    a = parse_dataset('{"id": "1", "prompt": "p", "label": "x"}\n', "a")
    b = parse_dataset('\n{"label": "x", "prompt": "p",   "id": "1"}\n', "b")
    c = parse_dataset('{"id": "1", "prompt": "p", "label": "y"}\n', "c")
    assert a.sha256 == b.sha256 != c.sha256


@pytest.mark.parametrize(("line", "field"), [
    ('{"id": "1", "prompt": "p", "colour": 1}', "line 1: colour"),
    ('{"id": "1", "prompt": "p", "kind": "golden"}', "line 1: kind"),
    ('{"id": "1", "prompt": "p", "messages": []}', "line 1: messages"),
    ('{"prompt": "p"}', "line 1: id"),
    ('[1, 2]', "line 1: (line)"),
])
def test_dataset_errors_name_the_line_and_field(line: str, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_dataset(line + "\n", "d.jsonl")
    assert err.value.path == "d.jsonl" and err.value.field == field


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(ConfigError, match="duplicate id 'a' \\(first on line 1\\)"):
        parse_dataset('{"id": "a", "prompt": "p"}\n{"id": "a", "prompt": "q"}\n', "d")


def test_selection_filters_samples_and_keeps_file_order(tmp_path: Path) -> None:
    cases = load_dataset(label_dataset(tmp_path / "d.jsonl", 20)).cases
    regress = parse_dataset('{"id": "r", "kind": "regression", "tags": ["billing"], "prompt": "p"}\n', "r").cases
    all_cases = cases + regress
    assert [c.id for c in select(all_cases, Selection(parse_filter("kind=regression,tag=billing")))] == ["r"]
    assert select(all_cases, Selection(parse_filter("kind=regression,tag=other"))) == ()
    s1 = select(all_cases, Selection(sample=5, seed=3))
    assert len(s1) == 5 and s1 == select(all_cases, Selection(sample=5, seed=3))
    assert [c.id for c in s1] == sorted(c.id for c in s1)
    assert select(all_cases, Selection(sample=5, seed=4)) != s1
    assert [c.id for c in select(all_cases, Selection(only_ids=frozenset({"c003", "r"})))] == ["c003", "r"]
    with pytest.raises(ConfigError):
        parse_filter("colour=red")


def test_yaml_line_finds_nested_fields() -> None:
    text = "name: x\ncriteria:\n  - name: a\n    type: exact\n  - name: b\n    type: nope\n"
    assert yaml_line(text, "criteria[1].type") == 6
    assert yaml_line(text, "name") == 1
    assert yaml_line(text, "criteria[7].type") == 2  # past the list's end: the list's own line


def test_expansion_keeps_ground_truth_and_marks_origin(tmp_path: Path) -> None:
    seed = load_dataset(REPO / "scenarios/eval/support-tickets.jsonl").cases[:3]
    out = expand(seed, pad_to=(60, 120), seed=1)
    assert len(out) == 3 * (1 + 6)  # original + typo, case, whitespace, 2 pads, format
    by_id = {c.id: c for c in out}
    for c in seed:
        for v in ("typo", "case", "whitespace", "pad-60", "pad-120", "format"):
            var = by_id[f"{c.id}~{v}"]
            assert var.label == c.label and var.origin == c.id and var.kind == "edge"
            assert var.messages is not None and var.messages[0] == c.messages[0]  # system prompt kept
            assert var.user_text() != c.user_text()
        assert len(by_id[f"{c.id}~pad-120"].user_text().split()) >= 120
    assert [c.to_json() for c in expand(seed, seed=1)] == [c.to_json() for c in expand(seed, seed=1)]
    assert [c.to_json() for c in expand(seed, seed=1)] != [c.to_json() for c in expand(seed, seed=2)]


def test_pricing_cost_buckets_cache_and_staleness() -> None:
    p = parse_pricing({"source": "s", "as_of": "2026-01-01", "models": {
        "m": {"input_per_mtok": 2.0, "cached_input_per_mtok": 0.5, "cache_write_per_mtok": 2.5, "output_per_mtok": 8.0,
              "embedding_per_mtok": 0.1}}}, "pricing.yaml")
    price = p.price("m", "test")
    u = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=600, cache_write_tokens=100)
    full = (300 * 2.0 + 600 * 0.5 + 100 * 2.5 + 500 * 8.0) / 1e6
    assert call_cost(u, price, None) == pytest.approx((full, full))
    assert call_cost(u, price, "hit-exact") == pytest.approx((0.0, full))
    assert call_cost(u, price, "hit-semantic") == pytest.approx((1000 * 0.1 / 1e6, full))
    assert stale_days(price, dt.date(2026, 3, 1)) is None
    assert stale_days(price, dt.date(2026, 4, 2)) == 91
    with pytest.raises(ConfigError, match="no price for 'x'"):
        p.price("x", "target 'a'")
    with pytest.raises(ConfigError, match="as_of"):
        parse_pricing({"source": "s", "as_of": "last week", "models": {}}, "p.yaml")
    usage = usage_from({"prompt_tokens": 10, "completion_tokens": 5,
                        "prompt_tokens_details": {"cached_tokens": 4},
                        "completion_tokens_details": {"reasoning_tokens": 3}})
    assert (usage.cached_tokens, usage.reasoning_tokens) == (4, 3)


def _paired(n: int, q_c: float, q_i: float) -> PairedCases:
    ones = np.ones(n)
    return PairedCases(q_c=ones * q_c, q_i=ones * q_i, spend_c=ones, spend_i=ones, acc_c=ones, acc_i=ones,
                       k_c=ones, k_i=ones, e2e_c=[], e2e_i=[], ttft_c=[], ttft_i=[])


def test_decision_floors() -> None:
    kw = {"quality_ratio_min": 0.97, "cost_ratio_max": 1.1, "p95_e2e_ratio_max": None, "p95_ttft_ratio_max": None,
          "consistency_ratio_min": None}
    assert decide("c", "i", _paired(30, 1.0, 1.0), **kw).verdict == "ACCEPT"
    few = decide("c", "i", _paired(5, 1.0, 1.0), **kw, min_cases=20)
    assert few.verdict == "INCONCLUSIVE" and few.reason == "only 5 shared cases (the rule needs at least 20)"
    worse = decide("c", "i", _paired(5, 0.5, 1.0), **kw, min_cases=20)
    assert worse.verdict == "REJECT" and worse.reason == "fails quality"  # a clear failure needs no floor


def test_scorecard_round_trip(tmp_path: Path) -> None:
    import orjson

    from loadbench.eval.scorecard import Scorecard

    # written by `loadbench eval scenarios/eval/summaries.yaml` (judge, pairwise, prices): readers
    # must keep accepting every scorecard version written so far
    obj = json.loads((Path(__file__).parent / "fixtures/scorecard.json").read_text())
    sc = Scorecard.from_json(obj)
    assert sc.judge is not None and sc.target("candidate").pairwise and sc.target("current").cost is not None
    assert orjson.dumps(sc.to_json()) == orjson.dumps(Scorecard.from_json(sc.to_json()).to_json())
    assert _subset(json.loads(orjson.dumps(obj)), json.loads(orjson.dumps(sc.to_json())))  # nothing old is lost
    with pytest.raises(ConfigError):
        Scorecard.from_json({**obj, "schema": "loadbench.summary/1"})


def _subset(old: object, new: object) -> bool:
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and _subset(v, new[k]) for k, v in old.items())
    if isinstance(old, list):
        same_length = isinstance(new, list) and len(old) == len(new)
        return same_length and all(_subset(a, b) for a, b in zip(old, new, strict=True))
    return old == new


def test_targets_from_a_profile(tmp_path: Path) -> None:
    from loadbench.eval.suite import load_suite

    label_dataset(tmp_path / "d.jsonl", 2)
    (tmp_path / "profile.yaml").write_text(
        "users: 4\ntargets:\n"
        "  - {name: prod, url: 'http://127.0.0.1:9/v1', model: m1, options: {include_usage: true}}\n")
    (tmp_path / "suite.yaml").write_text(
        "name: s\ndatasets: [d.jsonl]\ncriteria: [{name: label, type: classification}]\ntargets_from: profile.yaml\n")
    suite = load_suite(tmp_path / "suite.yaml")
    assert [(t.name, t.url, t.model) for t in suite.targets] == [("prod", "http://127.0.0.1:9/v1", "m1")]
    (tmp_path / "suite.yaml").write_text(
        "name: s\ndatasets: [d.jsonl]\ncriteria: [{name: label, type: classification}]\n")
    with pytest.raises(ConfigError, match="names no targets"):
        load_suite(tmp_path / "suite.yaml")


def test_pareto_frontier_and_html_tables() -> None:
    from loadbench.eval.render import pareto
    from loadbench.report.document import Bullets, Document, Table, to_html

    pts = [("cheap", 1.0, 0.80), ("best", 3.0, 0.95), ("dominated", 3.5, 0.90), ("tied", 1.0, 0.80)]
    assert pareto(pts) == {"cheap", "best", "tied"}
    assert pareto([("a", 2.0, 0.9), ("b", 1.0, 0.95)]) == {"b"}
    html = to_html(Document("T", [Table(["a", "b"], [["1", "**2**"]]), Bullets(["`x`"])]))
    assert ("<h1>T</h1>\n<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td>"
            "<td><strong>2</strong></td></tr></tbody></table>\n<ul><li><code>x</code></li></ul>") in html
