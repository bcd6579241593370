"""`loadbench eval` against a real engine. Its answers are random text, so the quality figures say
nothing; what is tested is the plumbing, the cost from the engine's own usage and the latency columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.engine import MODEL_NAME
from tests.conftest import run_loadbench
from tests.eval.conftest import label_dataset, only_scorecard, pricing_file, write_suite

pytestmark = [pytest.mark.real, pytest.mark.slow]
MAX_TOKENS = 8


def test_eval_against_the_engine_costs_its_usage_and_times_its_calls(engine_factory, tmp_path: Path) -> None:
    engine = engine_factory(slots=4)
    data = label_dataset(tmp_path / "cases.jsonl", 12)
    pricing_file(tmp_path, {"engine": {"input_per_mtok": 1.0, "output_per_mtok": 10.0}})
    suite = write_suite(tmp_path, data, [{"name": "engine", "url": engine.base_url, "model": MODEL_NAME,
                                          "price": "engine"}],
                        # the engine closes each connection after its reply while answering keep-alive: a
                        # call that meets such a closed pooled connection is sent once more by
                        # protocol.keepalive.post (not an attempt); retries cover anything else
                        pricing="pricing.yaml", repeats=2, concurrency=4, retries=2,
                        request={"max_tokens": MAX_TOKENS, "temperature": 1.0},
                        criteria=[{"name": "label", "type": "classification"},
                                  {"name": "tokens", "type": "length", "unit": "tokens", "min": MAX_TOKENS,
                                   "max": MAX_TOKENS},
                                  {"name": "length-stop", "type": "finish_reason", "expect": "length"}],
                        accept=["tokens", "length-stop"])
    proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr  # no decision rule: ACCEPT or too few cases
    folder, sc = only_scorecard(tmp_path / "out")
    card = sc.target("engine")
    assert card.calls == 24 and card.errors == 0
    outputs = [json.loads(x) for x in (folder / "outputs.jsonl").read_text().splitlines() if x.strip()]
    assert len(outputs) == 24 and all(o["ok"] for o in outputs)
    print(f"eval: attempts per call {sorted(o['attempts'] for o in outputs)}")
    # every answer stopped at max_tokens, as the engine's own usage and finish reason say
    assert {o["usage"]["completion_tokens"] for o in outputs} == {MAX_TOKENS}
    assert {o["finish_reason"] for o in outputs} == {"length"}
    assert card.quality.acceptable.value == 1.0
    # cost: the engine's usage at the suite's prices, summed over the calls
    assert card.cost is not None and card.cost.mean_output_tokens == MAX_TOKENS
    spend = sum((o["usage"]["prompt_tokens"] * 1.0 + o["usage"]["completion_tokens"] * 10.0) / 1e6 for o in outputs)
    assert card.cost.spend == pytest.approx(spend) and card.cost.mean_input_tokens > 10
    # latency columns from the calls: a first token before the end of every answer
    lat = card.latency
    assert lat.ttft_ms.n == 24 and lat.e2e_ms.n == 24
    assert 0 < lat.ttft_ms.p50 <= lat.e2e_ms.p50 and lat.e2e_ms.p95 <= lat.e2e_ms.p99
    assert all(0 < o["ttft_ms"] <= o["e2e_ms"] for o in outputs)
