"""``loadbench ab`` on the request log of a real gateway with an experiment: CONTINUE early, PROMOTE with
enough requests, ROLLBACK naming cost for a candidate priced above cost_ratio_max; reports and exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.conftest import run_loadbench
from tests.gateway.harness import CHAT, Upstream, ok, post, upstream
from tests.gateway.test_experiments import config
from tests.gateway.test_requestlog import logged

PRICES = """currency: USD
source: test prices
as_of: 2026-11-01
models:
  inc: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}
  cand: {{input_per_mtok: {c_in}, output_per_mtok: {c_out}}}
"""


def _log(tmp_path: Path, batches: list[int], cost_factor: float) -> list[tuple[int, dict[str, Any], str]]:
    """Send ``batches`` of requests (half streamed) and run ``loadbench ab`` after each."""
    db = tmp_path / "gw.db"
    (tmp_path / "prices.yaml").write_text(PRICES.format(c_in=1.0 * cost_factor, c_out=2.0 * cost_factor))
    results = []

    async def main() -> None:
        async with upstream(Upstream(ok)) as a, upstream(Upstream(ok)) as b:
            cfg = config(a, b, db, weight=50, assign_by="random", success={"min_requests": 40})
            cfg["request_log"]["pricing"] = str(tmp_path / "prices.yaml")
            async with logged(cfg) as (url, gw), aiohttp.ClientSession() as s:
                for i, n in enumerate(batches):
                    for j in range(n):
                        status, _, _ = await post(s, url, {**CHAT, "stream": j % 2 == 0},
                                                  headers={"X-Loadbench-Metadata": orjson.dumps(
                                                      {"task": "qa" if j % 3 else "sum"}).decode()})
                        assert status == 200
                    await asyncio.sleep(0.2)  # two flushes: every answered request is on disk
                    out = tmp_path / f"ab{i}"
                    result = await asyncio.to_thread(run_loadbench, "ab", str(db), "--experiment", "exp1", "--by",
                                                     "task", "--out", str(out))
                    results.append((result.returncode, json.loads((out / "ab.json").read_text()), result.stdout))
                await gw.close()

    asyncio.run(main())
    return results


def test_continue_early_then_promote(tmp_path: Path) -> None:
    (early_code, early, early_md), (late_code, late, _) = _log(tmp_path, [30, 900], cost_factor=1.0)
    assert early_code == 3 and early["overall"]["verdict"] == "CONTINUE"
    assert "requests needed" in early["overall"]["reason"] and early["overall"]["more_requests"] > 0
    assert "CONTINUE" in early_md and "| incumbent |" in early_md
    assert late_code == 0 and late["overall"]["verdict"] == "PROMOTE", late["overall"]["criteria"]
    arms = {a["arm"]: a for a in late["overall"]["arms"]}
    assert arms["incumbent"]["requests"] + arms["candidate"]["requests"] == 930
    assert arms["candidate"]["cost_per_request"] > 0 and arms["candidate"]["ttft"]["p50_ms"] > 0
    assert {g["group"] for g in late["groups"]} == {"task=qa", "task=sum"}
    html = (tmp_path / "ab1" / "ab.html").read_text()
    assert "<svg" in html and "PROMOTE" in html


def test_a_candidate_priced_20_percent_above_the_ratio_is_rolled_back_naming_cost(tmp_path: Path) -> None:
    ((code, report, md),) = _log(tmp_path, [600], cost_factor=1.10 * 1.2)
    assert code == 1 and report["overall"]["verdict"] == "ROLLBACK"
    assert report["overall"]["reason"].startswith("cost:") and "ROLLBACK: cost" in md


def test_an_unknown_experiment_is_bad_input(tmp_path: Path) -> None:
    _log(tmp_path, [2], cost_factor=1.0)
    result = run_loadbench("ab", str(tmp_path / "gw.db"), "--experiment", "nope")
    assert result.returncode == 2 and "no experiment 'nope'" in result.stderr and "exp1" in result.stderr
