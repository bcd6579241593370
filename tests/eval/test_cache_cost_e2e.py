"""Point 5 of issue 12 end to end: through the real gateway with its exact cache on, repeats of
the same cases hit the cache, and the cost per acceptable outcome falls by the hit rate; the
scorecard shows it with and without the cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loadbench.procs import start_server
from tests.conftest import run_loadbench
from tests.eval.conftest import FAST, label_dataset, only_scorecard, pricing_file, write_suite

pytestmark = pytest.mark.slow
CASES, REPEATS = 30, 3


def test_cost_per_acceptable_outcome_falls_by_the_cache_hit_rate(tmp_path: Path, mock_factory) -> None:
    data = label_dataset(tmp_path / "cases.jsonl", CASES)
    mock = mock_factory("--answers", str(data), "--verbosity", "200", *FAST)
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "targets": [{"name": "mock", "url": mock.base_url, "model": "mock-model"}],
        "virtual_models": [{"name": "chat", "targets": [{"target": "mock"}]}],
        "cache": {"mode": "exact", "ttl_s": 600}}))
    gateway = start_server(["gateway", "--config", str(config), "--port", "0"])
    try:
        pricing_file(tmp_path, {"mock-model": {"input_per_mtok": 1.0, "output_per_mtok": 4.0}})
        suite = write_suite(tmp_path, data, [{"name": "cached", "url": gateway.base_url, "model": "chat",
                                              "price": "mock-model"}],
                            pricing="pricing.yaml", repeats=REPEATS)
        proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
    finally:
        gateway.stop()
    assert proc.returncode == 0, proc.stderr
    folder, sc = only_scorecard(tmp_path / "out")
    cost = sc.target("cached").cost
    assert cost is not None
    # repeat 1 misses every case; repeats 2 and 3 are exact hits (temperature 0, same messages)
    assert cost.cache_hit_rate == pytest.approx((REPEATS - 1) / REPEATS)
    assert sc.target("cached").quality.acceptable.value == 1.0
    assert cost.per_acceptable.value == pytest.approx(cost.per_acceptable_nocache.value * (1 - cost.cache_hit_rate))
    assert cost.spend_nocache == pytest.approx(REPEATS * cost.spend)
    md = (folder / "scorecard.md").read_text()
    assert "cost/acceptable without cache" in md and "| 67% |" in md
