"""Point 3 of issue 12 end to end: a judge with a position bias is neutralised by judging both
orders, and a judge with a name bias never sees the name (blinding), with a control run that
shows the bias is real when blinding is off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_loadbench
from tests.eval.conftest import FAST, only_scorecard, write_suite

pytestmark = pytest.mark.slow
CASES = 40
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo",
         "lima", "mike"]


def reference_dataset(path: Path) -> Path:
    with path.open("w") as fh:
        for i in range(CASES):
            ref = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(8)) + f" number {i}."
            fh.write(json.dumps({"id": f"s{i:02d}", "messages": [{"role": "user", "content": f"Summarise text {i}"}],
                                 "reference": ref}) + "\n")
    return path


def judged(tmp_path: Path, mock_factory, judge_args: list[str], blind: bool) -> tuple[Path, object]:
    data = reference_dataset(tmp_path / "refs.jsonl")
    # identical quality; each signs with its provider's name, which the suite lists for stripping
    inc = mock_factory("--answers", str(data), "--answer-signature", "Zenith", *FAST)
    cand = mock_factory("--answers", str(data), "--answer-signature", "Acme", *FAST)
    judge = mock_factory("--judge", *judge_args, *FAST)
    suite = write_suite(
        tmp_path, data,
        [{"name": "inc", "url": inc.base_url, "model": "mock-model", "strip_names": ["Zenith"]},
         {"name": "cand", "url": cand.base_url, "model": "mock-model", "strip_names": ["Acme"]}],
        criteria=[{"name": "rubric", "type": "judge", "rubric": [
            {"name": "faithful", "description": "agrees with the reference"},
            {"name": "complete", "description": "keeps the reference's facts"}]}],
        judge={"pairwise": True, "blind": blind, "judges": [{"name": "j", "url": judge.base_url, "model": "jm"}]})
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    return only_scorecard(tmp_path / "out")


def judgements(folder: Path, kind: str) -> list[dict]:
    rows = [json.loads(x) for x in (folder / "judgements.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


def test_both_orders_bring_identical_candidates_to_a_tie_despite_position_bias(tmp_path: Path,
                                                                               mock_factory) -> None:
    folder, sc = judged(tmp_path, mock_factory, ["--judge-position-bias", "0.8", "--seed", "4"], blind=True)
    pairs = judgements(folder, "pair")
    assert len(pairs) == CASES
    # one order alone would have crowned whichever answer came first
    first_alone = sum(p["first"] == "cand" for p in pairs) / len(pairs)
    assert 0.65 <= first_alone <= 0.92
    card = sc.target("cand").pairwise[0]
    assert (card.wins, card.losses, card.ties) == (0, 0, CASES)
    assert card.win_rate.contains(0.5)
    stats = sc.judge.judges[0]
    assert stats.position_consistency is not None and stats.position_consistency < 0.2  # expected 0.2² = 0.04
    # per case: one grade per target and the pair in two orders
    assert stats.calls == 4 * CASES


def test_a_name_bias_has_no_effect_because_names_never_reach_the_judge(tmp_path: Path, mock_factory) -> None:
    folder, sc = judged(tmp_path, mock_factory, ["--judge-name-bias", "Acme"], blind=True)
    card = sc.target("cand").pairwise[0]
    assert (card.wins, card.losses, card.ties) == (0, 0, CASES)
    rubric = {t: sc.target(t).quality.criteria[0].score.value for t in ("inc", "cand")}
    assert rubric["inc"] == rubric["cand"]
    # the outputs still carry the names: it is the judge's view that is blinded
    outputs = [json.loads(x) for x in (folder / "outputs.jsonl").read_text().splitlines()]
    assert all("Acme" in o["text"] for o in outputs if o["target"] == "cand")


def test_control_without_blinding_the_name_bias_decides(tmp_path: Path, mock_factory) -> None:
    _, sc = judged(tmp_path, mock_factory, ["--judge-name-bias", "Acme"], blind=False)
    card = sc.target("cand").pairwise[0]
    assert card.wins == CASES
