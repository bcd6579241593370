"""Harvesting a dataset from the request log: allocation by stratum against hand counts, and the CLI on
a real gateway's log writing cases ``loadbench eval`` reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson

from loadbench.ab.harvest import LoggedBody, allocate, stratified
from loadbench.eval.dataset import load_dataset
from tests.conftest import run_loadbench
from tests.gateway.harness import CHAT, Upstream, ok, one_target, post, upstream
from tests.gateway.test_requestlog import logged, with_log


def test_allocation_is_proportional_with_one_case_per_stratum_at_least() -> None:
    assert allocate({"a": 80, "b": 15, "c": 5}, 20) == {"a": 16, "b": 3, "c": 1}
    assert allocate({"a": 98, "b": 1, "c": 1}, 10) == {"a": 8, "b": 1, "c": 1}
    assert allocate({"a": 3, "b": 1}, 10) == {"a": 3, "b": 1}  # never more than a stratum holds
    assert sum(allocate({"a": 5, "b": 5, "c": 5}, 2).values()) == 2


def test_a_sample_is_seeded_and_counts_identical_bodies_once() -> None:
    bodies = [LoggedBody(f"r{i}", {"prompt": f"p{i % 30}"}, "x" if i % 3 else "y") for i in range(90)]
    first = stratified(bodies, 10, seed=1)
    assert [b.request_id for b in first] == [b.request_id for b in stratified(bodies, 10, seed=1)]
    assert len({b.body["prompt"] for b in first}) == 10


def test_dataset_from_log_writes_cases_eval_reads(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"

    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url, \
                logged(with_log(one_target(up_url), db, log_bodies="all")) as (url, gw), aiohttp.ClientSession() as s:
            for i in range(30):
                task = "qa" if i % 3 else "sum"
                body = {**CHAT, "messages": [{"role": "user", "content": f"question {i}"}]}
                await post(s, url, body, headers={"Authorization": "Bearer sk-client-secret-1",
                                                  "X-Loadbench-Metadata": orjson.dumps({"task": task}).decode()})
            await gw.close()

    asyncio.run(main())
    out = tmp_path / "cases.jsonl"
    result = run_loadbench("dataset", "from-log", str(db), "--stratify", "task", "--n", "9", "--out", str(out))
    assert result.returncode == 0, result.stderr
    cases = load_dataset(out).cases
    assert len(cases) == 9
    assert sorted(c.tags[0] for c in cases) == ["task:qa"] * 6 + ["task:sum"] * 3
    assert all(c.messages and c.messages[0][1].startswith("question ") for c in cases)
