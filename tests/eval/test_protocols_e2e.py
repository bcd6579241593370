"""Point 4 of issue 20: an eval suite comparing an ``azure`` target with an ``anthropic`` target produces a
scorecard and a decision, graded by a judge that speaks Anthropic Messages. Each target is a real
server speaking its dialect (tests/protocol/dialect_server.py); the eval runner speaks each one's
protocol, with its key from the environment, and prices each one's usage with the cache read and
write rates."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from loadbench.pricing import Price, token_cost
from loadbench.protocol.dialect import STOP
from tests.conftest import run_loadbench
from tests.eval.conftest import only_scorecard, pricing_file, write_suite
from tests.protocol.dialect_server import USAGE, DialectServer, Script

pytestmark = pytest.mark.slow
PRICES = {"input_per_mtok": 1.0, "cached_input_per_mtok": 0.1, "cache_write_per_mtok": 1.25, "output_per_mtok": 5.0}


def test_an_azure_and_an_anthropic_target_get_a_scorecard_and_a_decision(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_KEY", "az-secret")
    monkeypatch.setenv("CLAUDE_KEY", "ant-secret")
    data = tmp_path / "cases.jsonl"
    data.write_text("".join(json.dumps({"id": f"c{i:02d}", "messages": [{"role": "user", "content": f"greet {i}"}],
                                        "label": "hello", "reference": "Hello"}) + "\n" for i in range(24)))
    pricing_file(tmp_path, {"gpt-dep": PRICES, "claude-x": PRICES})
    good = Script(pieces=(("the answer is Hello", "answer"),), finish=STOP)
    poor = Script(pieces=(("no idea", "answer"),), finish=STOP)
    grades = Script(pieces=(('{"polite": 5}', "answer"),), finish=STOP)
    with DialectServer(good) as azure, DialectServer(poor) as claude, DialectServer(grades) as judge:
        suite = write_suite(tmp_path, data, [
            {"name": "azure", "url": azure.url, "model": "gpt-dep", "protocol": "azure", "api_key_env": "AZURE_KEY"},
            {"name": "claude", "url": claude.url, "model": "claude-x", "protocol": "anthropic",
             "api_key_env": "CLAUDE_KEY"}],
            criteria=[{"name": "hello", "type": "contains", "value": "Hello"},
                      {"name": "manners", "type": "judge", "rubric": [{"name": "polite", "description": "is polite"}]}],
            judge={"judges": [{"name": "judge", "url": judge.url, "model": "claude-judge", "protocol": "anthropic",
                               "api_key_env": "CLAUDE_KEY"}]},
            pricing="pricing.yaml", decide={"incumbent": "azure", "min_cases": 20, "quality_ratio_min": 0.97})
        proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
        assert {s.dialect for s in azure.seen} == {"azure"} and {s.dialect for s in claude.seen} == {"anthropic"}, \
            proc.stderr
        assert {s.headers.get("api-key") for s in azure.seen} == {"az-secret"}
        assert {s.headers.get("x-api-key") for s in claude.seen} == {"ant-secret"}
        # the judge speaks Anthropic Messages too: one grade per answer, read back from its answer
        assert len(judge.seen) == 48 and {s.dialect for s in judge.seen} == {"anthropic"}
    _, sc = only_scorecard(tmp_path / "out")
    az, cl = sc.target("azure"), sc.target("claude")
    assert az.quality.acceptable.value == 1.0 and cl.quality.acceptable.value == 0.0
    assert sc.judge is not None and sc.judge.judges[0].calls == 48
    assert sc.decision is not None and sc.decision.verdict == "REJECT", proc.stdout
    assert proc.returncode != 0 and "decision: claude vs azure: REJECT" in proc.stdout
    # Anthropic's usage with its cache reads and writes, each priced at its own rate
    price = Price("claude-x", 1.0, 5.0, 0.1, 1.25, 0.0, "", dt.date(2026, 11, 1))
    per_call = token_cost(price, USAGE.prompt_tokens, USAGE.completion_tokens, USAGE.cached_tokens,
                          USAGE.cache_write_tokens)
    assert cl.cost is not None and cl.cost.spend == pytest.approx(24 * per_call)
    assert "secret" not in proc.stdout + proc.stderr


def test_a_bedrock_target_is_signed_for_its_region_and_priced_with_its_cache_usage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEVAL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "eval-aws-secret")
    data = tmp_path / "cases.jsonl"
    data.write_text("".join(json.dumps({"id": f"c{i}", "messages": [{"role": "user", "content": "hi"}]}) + "\n"
                            for i in range(3)))
    pricing_file(tmp_path, {"nova": PRICES})
    with DialectServer(Script(pieces=(("Hello", "answer"),))) as bedrock:
        suite = write_suite(tmp_path, data, [{"name": "br", "url": bedrock.url, "model": "nova", "protocol": "bedrock",
                                              "region": "eu-west-1"}],
                            criteria=[{"name": "hello", "type": "contains", "value": "Hello"}], pricing="pricing.yaml")
        proc = run_loadbench("eval", str(suite), "--out", str(tmp_path / "out"))
        assert proc.returncode == 0, proc.stderr
        assert len(bedrock.seen) == 3 and all(
            s.dialect == "bedrock" and s.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEVAL/")
            and "/eu-west-1/bedrock/aws4_request" in s.headers["authorization"] for s in bedrock.seen)
    _, sc = only_scorecard(tmp_path / "out")
    card = sc.target("br")
    price = Price("nova", 1.0, 5.0, 0.1, 1.25, 0.0, "", dt.date(2026, 11, 1))
    per_call = token_cost(price, USAGE.prompt_tokens, USAGE.completion_tokens, USAGE.cached_tokens,
                          USAGE.cache_write_tokens)
    assert card.quality.acceptable.value == 1.0
    assert card.cost is not None and card.cost.spend == pytest.approx(3 * per_call)
    assert "eval-aws-secret" not in proc.stdout + proc.stderr
