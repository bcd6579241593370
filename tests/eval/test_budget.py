"""`loadbench run --pricing`: cost per 1,000 requests and per hour at the measured throughput."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from loadbench.config.pricing import parse_pricing
from loadbench.eval.budget import run_budget
from tests.conftest import REPO, run_loadbench
from tests.eval.conftest import pricing_file


def test_budget_of_a_stored_run() -> None:
    summary = json.loads((REPO / "tests/fixtures/runs/open-v1/summary.json").read_text())
    price = parse_pricing({"source": "s", "as_of": "2026-11-01", "models": {
        "m": {"input_per_mtok": 1.0, "output_per_mtok": 4.0}}}, "p.yaml").price("m", "test")
    b = run_budget(summary, price, "USD", dt.date(2026, 12, 1))
    assert b is not None
    # 128 prompt + 64 output tokens per request, 10.25 req/s
    assert b.cost_per_request == pytest.approx((128 * 1.0 + 64 * 4.0) / 1e6)
    assert b.per_1000_requests == pytest.approx(0.384)
    assert b.per_hour == pytest.approx(10.25 * 3600 * 0.000384)
    assert b.stale_days is None and not b.tokens_estimated
    assert run_budget({"tokens": {}, "throughput": {}}, price, "USD", dt.date(2026, 12, 1)) is None


def test_a_price_missing_from_the_file_exits_2_before_any_load(tmp_path: Path) -> None:
    prices = pricing_file(tmp_path, {"other": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}})
    proc = run_loadbench("run", "--duration", "1", "--pricing", str(prices), "--price", "mine",
                         "--out", str(tmp_path / "out"), timeout_s=60)
    assert proc.returncode == 2
    assert f"{prices}: models.mine: no price for 'mine'" in proc.stderr
    assert not (tmp_path / "out").exists()
