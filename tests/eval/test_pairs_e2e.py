"""``loadbench eval SUITE --from-log LOG --pairs`` end to end: a real gateway shadows every request of a
dataset from one mock (known accuracy) to another, logging both bodies; scoring the logged pairs
measures each target's configured accuracy within its interval, the blind two-order judge calls
identical answers a tie, and requests outside the suite are counted as unscorable."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from loadbench.eval.stats import wilson
from tests.conftest import run_loadbench
from tests.eval.conftest import FAST, LABELS, only_scorecard, pricing_file, write_suite
from tests.gateway.harness import post, run
from tests.gateway.test_requestlog import logged

KEY = {"Authorization": "Bearer sk-client-secret-1"}
CASES = 160
ACC_PRIMARY, ACC_SHADOW = 0.9, 0.5
STRAYS = 3  # requests the suite has no case for
GATEWAY_PRICES = """currency: USD
source: test prices
as_of: "2026-11-01"
models:
  prod: {input_per_mtok: 2.0, output_per_mtok: 8.0}
  cand: {input_per_mtok: 0.5, output_per_mtok: 1.0}
"""


def dataset(path: Path) -> Path:
    with path.open("w") as fh:
        for i in range(CASES):
            label = LABELS[i % len(LABELS)]
            # the reference is the label: the mock judge prefers the answer closer to it
            fh.write(json.dumps({"id": f"c{i:03d}", "messages": [{"role": "user", "content": f"ticket {i}: help"}],
                                 "label": label, "reference": label}) + "\n")
    return path


def gateway_config(primary: str, shadow: str, db: Path, prices: Path) -> dict[str, Any]:
    return {
        "targets": [{"name": "prod", "url": primary, "model": "mock-model"},
                    {"name": "cand", "url": shadow, "model": "mock-model"}],
        "virtual_models": [{"name": "vm", "targets": [{"target": "prod"}],
                            "shadow": {"targets": ["cand"], "fraction": 1.0, "max_concurrency": 64}}],
        "request_log": {"path": str(db), "flush_ms": 20, "log_bodies": "all", "pricing": str(prices)},
        "auth": {"api_keys_env": "CLIENT_KEYS"},
    }


def send_traffic(primary: str, shadow: str, db: Path, data: Path) -> None:
    cases = [json.loads(line) for line in data.read_text().splitlines()]
    prices = db.parent / "gateway-prices.yaml"
    prices.write_text(GATEWAY_PRICES)
    cfg = gateway_config(primary, shadow, db, prices)

    async def main() -> None:
        async with logged(cfg) as (url, gw), aiohttp.ClientSession() as s:
            sem = asyncio.Semaphore(16)

            async def one(i: int, content: str) -> None:
                async with sem:
                    body = {"model": "vm", "messages": [{"role": "user", "content": content}], "stream": i % 2 == 0,
                            "max_tokens": 16}
                    status, _, _ = await post(s, url, body, headers=KEY)
                    assert status == 200

            await asyncio.gather(*(one(i, c["messages"][0]["content"]) for i, c in enumerate(cases)),
                                 *(one(i, f"not in the suite {i}") for i in range(STRAYS)))
            await gw.close()  # waits for the shadows, then writes the log

    run(main())


@pytest.mark.slow
def test_logged_pairs_measure_both_accuracies_and_identical_answers_tie(tmp_path: Path, mock_factory) -> None:
    data = dataset(tmp_path / "d.jsonl")
    prod = mock_factory("--answers", str(data), "--accuracy", str(ACC_PRIMARY), "--seed", "1", *FAST)
    cand = mock_factory("--answers", str(data), "--accuracy", str(ACC_SHADOW), "--seed", "2", *FAST)
    db = tmp_path / "gw.db"
    send_traffic(prod.base_url, cand.base_url, db, data)
    suite = write_suite(tmp_path, data, [{"name": "x", "model": "mock-model", "mock": {}}],
                        judge={"pairwise": True, "blind": True,
                               "judges": [{"name": "j", "model": "jm", "mock": {"judge": True, "ttft_ms": 0,
                                                                                 "itl_ms": 0}}]},
                        pricing=str(pricing_file(tmp_path, {m: {"input_per_mtok": 1, "output_per_mtok": 1}
                                                            for m in ("jm", "mock-model")})))
    proc = run_loadbench("eval", str(suite), "--from-log", str(db), "--pairs", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    folder, sc = only_scorecard(tmp_path / "out")
    assert [t.name for t in sc.targets] == ["prod", "cand"]
    for name, acc in (("prod", ACC_PRIMARY), ("cand", ACC_SHADOW)):
        card = sc.target(name)
        assert card.calls == CASES
        assert card.quality.acceptable.contains(acc), (name, card.quality.acceptable)
        assert card.cost is not None and card.cost.price_source == "request log cost_usd"
        # the logged cost, summed over the suite's requests, per acceptable outcome
        logged_spend = sqlite3.connect(db).execute(
            "SELECT SUM(cost_usd) FROM requests WHERE target = ? AND request_body NOT LIKE '%not in the suite%'",
            (name,)).fetchone()[0]
        assert logged_spend > 0 and card.cost.spend == pytest.approx(logged_spend, rel=1e-3)
        accepted = round(card.quality.acceptable.value * CASES)
        wide = wilson(accepted, CASES)  # one trial per logged answer
        assert (card.quality.acceptable.low, card.quality.acceptable.high) == pytest.approx((wide.low, wide.high),
                                                                                            abs=1e-6)
        assert card.cost.per_acceptable.value == pytest.approx(logged_spend / accepted, rel=1e-3)
    assert f"{STRAYS} of {CASES + STRAYS} pairs unscorable: the request matches no case of the suite" in sc.warnings
    # the judge: identical answers (both right, or the same wrong label) always tie
    outputs = [orjson.loads(x) for x in (folder / "outputs.jsonl").read_text().splitlines()]
    text = {(o["target"], o["case_id"]): o["text"] for o in outputs}
    pairs = [orjson.loads(x) for x in (folder / "judgements.jsonl").read_text().splitlines()]
    assert len(pairs) == CASES and all(p["kind"] == "pair" and p["other"] == "prod" for p in pairs)
    same = [p for p in pairs if text[("cand", p["case_id"])] == text[("prod", p["case_id"])]]
    assert len(same) >= CASES * ACC_PRIMARY * ACC_SHADOW * 0.7
    assert all(p["winner"] == "tie" for p in same)
    # a right answer beats a wrong one: the better primary wins the pairwise comparison
    card = sc.target("cand").pairwise[0]
    assert card.against == "prod" and card.pairs == CASES and card.losses > card.wins
    assert card.wins + card.ties + card.losses == CASES


def test_a_file_that_is_not_a_request_log_and_a_log_without_pairs_fail_with_exit_2(tmp_path: Path) -> None:
    data = dataset(tmp_path / "d.jsonl")
    suite = write_suite(tmp_path, data, [{"name": "x", "model": "mock-model", "mock": {}}])
    bogus = tmp_path / "bogus.db"
    bogus.write_text("not a database")
    proc = run_loadbench("eval", str(suite), "--from-log", str(bogus), "--pairs")
    assert proc.returncode == 2 and "not a loadbench request log" in proc.stderr
    empty = tmp_path / "empty.db"
    from loadbench.gateway.logdb import create

    create(str(empty)).close()
    proc = run_loadbench("eval", str(suite), "--from-log", str(empty), "--pairs")
    assert proc.returncode == 2 and "no shadow pairs" in proc.stderr
    proc = run_loadbench("eval", str(suite), "--pairs")
    assert proc.returncode == 2 and "--from-log LOG and --pairs go together" in proc.stderr
    assert sqlite3.connect(empty).execute("SELECT COUNT(*) FROM requests").fetchone() == (0,)


def test_pairs_without_bodies_or_without_a_case_are_counted_apart_and_repeats_follow_the_pair(
        tmp_path: Path) -> None:
    from loadbench.eval.pairs import pair_records
    from loadbench.eval.suite import load_suite
    from loadbench.results.request_log import LoggedAnswer, LoggedPair

    data = dataset(tmp_path / "d.jsonl")
    suite = load_suite(write_suite(tmp_path, data, [{"name": "x", "model": "mock-model", "mock": {}}]))

    def answer(target: str, question: str | None, text: str | None) -> LoggedAnswer:
        req = None if question is None else orjson.dumps({"messages": [{"role": "user", "content": question}]}).decode()
        resp = None if text is None else orjson.dumps({"choices": [{"message": {"content": text}}]}).decode()
        return LoggedAnswer(target, True, req, resp, 3, 1, 0.5, 1.0, 2.0, 200)

    pairs = [LoggedPair("p1", answer("a", "ticket 0: help", "billing"), answer("b", None, "billing")),
             LoggedPair("p2", answer("a", "ticket  0: help", "billing"), answer("b", None, "technical")),
             LoggedPair("p3", answer("a", None, None), answer("b", None, None)),
             LoggedPair("p4", answer("a", "ticket 1: help", "billing"), answer("b", None, None)),
             LoggedPair("p5", answer("a", "something else", "x"), answer("b", None, "y"))]
    got = pair_records(suite, pairs)
    assert (got.primary, got.shadow, got.pairs, got.no_body, got.no_case) == ("a", "b", 5, 2, 1)
    # the two pairs of case c000 are its repeats 0 and 1, the same repeat on both sides of a pair
    keys = [(r.target, r.case_id, r.repeat, r.text, r.scores["label"].passed) for r in got.records]
    assert keys == [("a", "c000", 0, "billing", True), ("b", "c000", 0, "billing", True),
                    ("a", "c000", 1, "billing", True), ("b", "c000", 1, "technical", False)]
