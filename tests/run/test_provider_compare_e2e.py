"""Bedrock against Azure OpenAI on the same seeded workload: one command, one side-by-side report."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import mock_stats, only_run, read_json, run_loadbench, samples_of


@pytest.mark.slow
def test_a_bedrock_target_against_an_azure_target_in_one_command(mock_factory, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDCOMPARE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "compare-secret")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-compare-key")
    mock = mock_factory("--protocol", "bedrock", "--protocol", "azure", "--ttft-ms", "20", "--itl-ms", "2",
                        "--tokens-per-chunk", "4")
    root = mock.base_url.removesuffix("/v1")
    profile = tmp_path / "p.yaml"
    profile.write_text(f"""name: bedrock-vs-azure
users: 2
max_requests: 12
seed: 7
targets:
  - {{name: bedrock, url: '{root}', protocol: bedrock, region: us-east-1, model: 'anthropic.claude-3-5-sonnet-v2:0'}}
  - {{name: azure, url: '{root}', protocol: azure, model: gpt-4o}}
""")
    out = tmp_path / "results"
    r = run_loadbench("run", "--profile", str(profile), "--out", str(out), "--no-calibrate", timeout_s=240)
    assert r.returncode in (0, 3), r.stdout + r.stderr
    parent = only_run(out)
    report = (parent / "report.html").read_text()
    assert "bedrock" in report and "azure" in report and "output tokens per chunk" in report
    prompts = {}
    for name, protocol in (("bedrock", "bedrock"), ("azure", "azure")):
        summary = read_json(parent / "targets" / name / "summary.json")
        assert summary["target"]["protocol"] == protocol
        assert summary["requests"]["ok"] == 12 and summary["tokens"]["source"] == "usage"
        assert summary["tokens"]["per_chunk_mean"] > 3.5  # 4 tokens a chunk (the last one fewer)
        prompts[name] = [s["prompt_tokens_requested"] for s in samples_of(parent / "targets" / name)]
    assert sorted(prompts["bedrock"]) == sorted(prompts["azure"])  # the same seeded workload
    assert mock_stats(mock)["by_status"] == {"200": 24 + 2}  # the loads and one pre-flight each
    for secret in ("compare-secret", "azure-compare-key"):
        assert not any(secret.encode() in p.read_bytes() for p in parent.rglob("*") if p.is_file())
