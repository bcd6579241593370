"""Input that must stop `loadbench run` before any load, and plans the run must read right."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import mock_stats, only_run, read_json, run_loadbench, run_profile, samples_of


def test_unset_api_key_env_exits_2_before_any_request(mock_factory, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LB_TEST_UNSET_KEY", raising=False)
    mock = mock_factory()
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--api-key-env", "LB_TEST_UNSET_KEY",
                      "--duration", "2", "--users", "1", "--out", str(out), timeout_s=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--api-key-env: LB_TEST_UNSET_KEY is not set" in r.stderr
    assert mock_stats(mock)["requests"] == 0  # not even the model probe or calibration
    assert not out.exists() or not any(out.iterdir())


def test_unset_key_of_a_profile_target_exits_2_before_any_request(mock_factory, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LB_TEST_UNSET_KEY", raising=False)
    mock = mock_factory()
    profile = tmp_path / "p.yaml"
    profile.write_text(f"duration_s: 2\nusers: 1\ntargets:\n  - {{name: a, url: '{mock.base_url}'}}\n"
                       f"  - {{name: b, url: '{mock.base_url}', api_key_env: LB_TEST_UNSET_KEY}}\n")
    r = run_loadbench("run", "--profile", str(profile), "--out", str(tmp_path / "results"), timeout_s=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "targets[b].api_key_env: LB_TEST_UNSET_KEY is not set" in r.stderr
    assert mock_stats(mock)["requests"] == 0


def test_an_unknown_protocol_exits_2_before_any_request(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory()
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--protocol", "grpc", "--duration", "2", "--users", "1",
                      "--out", str(out), timeout_s=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert ("--protocol: unknown protocol 'grpc': known protocols are anthropic, azure, bedrock, gemini, openai"
            in r.stderr)
    assert mock_stats(mock)["requests"] == 0
    profile = tmp_path / "p.yaml"
    profile.write_text(f"duration_s: 2\nusers: 1\ntargets:\n  - {{name: a, url: '{mock.base_url}', protocol: grpc}}\n")
    r = run_loadbench("run", "--profile", str(profile), "--out", str(out), timeout_s=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "targets[0].protocol: unknown protocol 'grpc'" in r.stderr
    assert mock_stats(mock)["requests"] == 0


@pytest.mark.parametrize(("args", "said"), [
    (("--protocol", "anthropic", "--model", "claude"), "targets[default].api_key_env: ANTHROPIC_API_KEY is not set "
                                                       "(export ANTHROPIC_API_KEY=..."),
    (("--protocol", "bedrock", "--model", "anthropic.claude-v2"), "targets[default].region: a bedrock target needs "
                                                                  "a region: set the target's 'region' or AWS_REGION"),
    (("--protocol", "gemini", "--model", "gemini 2.0 flash"), "targets[default].model: the gemini model "
                                                              "'gemini 2.0 flash' is not a model name"),
    (("--protocol", "azure"), "targets[default].model: the azure protocol needs the model named (pass --model"),
])
def test_bad_provider_input_exits_2_before_any_request(args: tuple[str, ...], said: str, mock_factory,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    mock = mock_factory("--protocol", "openai", "--protocol", "anthropic")
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, *args, "--duration", "2", "--users", "1", "--out", str(out),
                      timeout_s=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert said in r.stderr
    assert mock_stats(mock)["requests"] == 0
    assert not out.exists() or not any(out.iterdir())


def test_a_stream_error_event_is_a_failure_of_its_type_that_backs_off(mock_factory, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Anthropic's overloaded_error mid-stream: failed with its type, backed off like a 529; the key never
    reaches a file."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-never-written-anywhere")
    mock = mock_factory("--protocol", "anthropic", "--ttft-ms", "5", "--itl-ms", "1", "--stream-error-after", "3")
    out = tmp_path / "results"
    r = run_loadbench("run", "--protocol", "anthropic", "--target", mock.base_url.removesuffix("/v1"), "--model",
                      "claude", "--duration", "3", "--users", "1", "--no-calibrate", "--out", str(out), timeout_s=120)
    run = only_run(out)
    samples = samples_of(run)
    failed = [s for s in samples if s["outcome"] != "interrupted"]
    assert failed and all(s["outcome"] == "http_error" and s["error_kind"] == "overloaded_error"
                          and s["error"] == "injected mid-stream error" for s in failed), failed[:3]
    assert all(s["backoff_us"] for s in failed[:-1])  # each waited before the next, as after a 529
    assert len(failed) <= 6  # 0.5 s doubling: a handful in 3 s, never a hot loop
    for path in run.rglob("*"):
        if path.is_file():
            assert b"sk-ant-never-written-anywhere" not in path.read_bytes(), path
    assert "sk-ant-never-written-anywhere" not in r.stdout + r.stderr


@pytest.mark.slow
def test_an_rps_sweep_run_by_loadbench_run_is_summarised_as_open_loop(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "10", "--itl-ms", "2")
    run = run_profile(tmp_path, "name: rps-sweep\nsweep: {variable: rps, start: 10, step: 10, max: 20, hold_s: 3}\n"
                                "arrival: {kind: constant}\n", "--target", mock.base_url, "--no-calibrate")
    manifest = read_json(run / "manifest.json")
    assert manifest["load_plan"]["mode"] == "open"
    s = read_json(run / "summary.json")
    assert s["load"]["mode"] == "open"
    # the offered-rate check ran: 3 s at 10/s and 3 s at 20/s = 90 arrivals over 6 s
    assert s["generator"]["target_rps"] == pytest.approx(15, rel=0.02)
    assert s["generator"]["achieved_rps"] == pytest.approx(15, rel=0.1)
    assert [st["label"] for st in s["stages"]] == ["step-0", "step-1"]


@pytest.mark.parametrize(("mock_args", "path", "cause"), [
    (("--error-rate", "1", "--error-status", "401"), "/v1", "401 unauthorized: check --api-key-env"),
    (("--error-rate", "1", "--error-status", "403"), "/v1", "403 forbidden"),
    ((), "", "404 not found: the URL should end in /v1 (try http://HOST:PORT/v1)"),
])
def test_a_target_that_can_only_fail_stops_the_run_before_the_load(mock_factory, tmp_path: Path,
                                                                   mock_args: tuple[str, ...], path: str,
                                                                   cause: str) -> None:
    mock = mock_factory(*mock_args)
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.url + path, "--model", "mock-model", "--users", "2",
                      "--duration", "5", "--out", str(out), timeout_s=60)
    assert r.returncode == 4, r.stdout + r.stderr
    assert cause in r.stderr and "no load was sent" in r.stderr
    assert mock_stats(mock)["requests"] <= 1  # the pre-flight request, nothing else
    assert not out.exists() or not any(out.iterdir())


def test_a_throttling_target_is_measured_not_refused(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--error-rate", "1", "--error-status", "429")
    out = tmp_path / "results"
    r = run_loadbench("run", "--target", mock.base_url, "--users", "1", "--max-requests", "3", "--duration", "5",
                      "--no-calibrate", "--out", str(out), timeout_s=60)
    assert r.returncode == 4, r.stdout + r.stderr  # every request failed
    assert "pre-flight request answered 429" in r.stdout
    samples = samples_of(only_run(out))
    # the upstream's status and message are kept (they read "HTTP 429: " before)
    assert {(s["status"], s["error"]) for s in samples} == {(429, "HTTP 429: injected error (error_rate=1)")}
    summary = read_json(only_run(out) / "summary.json")
    assert summary["requests"]["failures"] == [{"status": 429, "message": "injected error (error_rate=1)",
                                                "count": len(samples)}]
    assert any(w.startswith("failures by status and message: 3 x 429 injected error") for w in summary["warnings"])


def test_embedded_with_target_is_an_error(tmp_path: Path) -> None:
    r = run_loadbench("run", "--target", "http://127.0.0.1:9/v1", "--embedded", "gateway",
                      "--out", str(tmp_path / "results"), timeout_s=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--embedded" in r.stderr and "cannot be combined with --target" in r.stderr


def test_a_target_without_v1_is_told_to_end_in_v1(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory()
    r = run_loadbench("run", "--target", mock.url, "--duration", "2", "--out", str(tmp_path / "results"),
                      timeout_s=60)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "the URL should end in /v1 (try http://HOST:PORT/v1)" in r.stderr
    assert "pass --model" not in r.stderr


@pytest.mark.slow
def test_an_open_loop_run_prints_no_locust_spawn_rate_warning(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "10", "--itl-ms", "2")
    profile = tmp_path / "p.yaml"
    profile.write_text("arrival: {kind: constant, rps: 10}\nduration_s: 3\nmax_in_flight: 200\n")
    r = run_loadbench("run", "--target", mock.base_url, "--profile", str(profile), "--no-calibrate",
                      "--out", str(tmp_path / "results"), timeout_s=120)
    assert r.returncode in (0, 3), r.stdout + r.stderr
    assert "spawn rate is very high" not in r.stdout + r.stderr
