"""The run as a sequence: validate -> target -> folder -> Locust -> summary -> verdict.

Everything that can be wrong with the input fails before any load is sent.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadbench import launcher
from loadbench.config import Profile, Scenario, load_profile, load_scenario
from loadbench.errors import ExitCode, InputError, TargetError
from loadbench.metrics.summary import render_table, write_summary
from loadbench.plan import RunPlan, TargetSpec
from loadbench.procs import ServerProcess, start_server
from loadbench.results import run_dir as rd

DEFAULT_MOCK_MODEL = "mock-model"


@dataclass(slots=True)
class RunRequest:
    target: str | None = None
    model: str | None = None
    profile_path: Path | None = None
    scenario_path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    api_key_env: str | None = None
    out_dir: Path = Path("results")
    name: str | None = None
    workers: int = 1  # workers expected to take part
    local_workers: int | None = None  # started here (None: = workers; 0 with --master)
    master_bind_host: str = "127.0.0.1"
    master_port: int | None = None
    strict: bool = False
    argv: list[str] = field(default_factory=list)
    quiet: bool = False
    mock_args: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    exit_code: ExitCode


def _say(req: RunRequest, line: str) -> None:
    if not req.quiet:
        print(line, flush=True)


def resolve_model(base_url: str, api_key: str | None = None, timeout_s: float = 5.0) -> str:
    """The first model the target lists (GET /models)."""
    request = urllib.request.Request(base_url.rstrip("/") + "/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            data = orjson.loads(resp.read())
        return str(data["data"][0]["id"])
    except Exception as exc:
        raise TargetError(f"could not list models at {base_url}/models ({exc}); pass --model") from exc


def load_inputs(req: RunRequest) -> tuple[Profile, Scenario]:
    from loadbench.report.gates import parse_exprs

    profile = load_profile(req.profile_path)
    profile = profile.apply_overrides(**{k: v for k, v in req.overrides.items() if v is not None})
    scenario = load_scenario(req.scenario_path)
    parse_exprs(profile.thresholds)  # a threshold that does not parse fails before any load
    if req.target is not None and not req.target.startswith(("http://", "https://")):
        raise InputError(f"--target: {req.target!r} is not an http(s) URL (example: http://127.0.0.1:8001/v1)")
    return profile, scenario


def execute(req: RunRequest) -> RunResult:
    profile, scenario = load_inputs(req)
    mock: ServerProcess | None = None
    try:
        if req.target is None:
            mock = start_server(["mock", "--port", "0", "--seed", str(profile.seed), *req.mock_args])
            base_url = mock.base_url
            model = req.model or profile.model or DEFAULT_MOCK_MODEL
            _say(req, f"loadbench: no --target given: started the embedded mock upstream at {base_url}")
        else:
            base_url = req.target.rstrip("/")
            model = req.model or profile.model or resolve_model(base_url)
        return _run(req, profile, scenario, base_url, model)
    finally:
        if mock is not None:
            mock.stop()


def _run(req: RunRequest, profile: Profile, scenario: Scenario, base_url: str, model: str) -> RunResult:
    name = req.name or profile.name or "run"
    run_dir = rd.new_run_dir(req.out_dir, name)
    run_id = run_dir.name
    api_key_env = req.api_key_env
    target = TargetSpec(url=base_url, model=model, api_key_env=api_key_env,
                        include_usage=profile.include_usage)
    manifest = rd.new_manifest(run_id=run_id, argv=req.argv, target={"url": base_url, "model": model,
                                                                     "api_key_env": api_key_env},
                               profile=profile.model_dump(mode="json"),
                               scenario=scenario.model_dump(mode="json"), start_unix_s=time.time())
    manifest["name"] = name
    rd.write_json(run_dir / rd.MANIFEST, manifest)
    plan = RunPlan(run_id=run_id, target=target, profile=profile.model_dump(mode="json"),
                   scenario=scenario.model_dump(mode="json"), seed=profile.seed,
                   interval_s=profile.interval_s, workers=req.workers)
    _say(req, f"loadbench: run {run_id}: {profile.mode} loop, target {base_url} (model {model}), "
              f"results in {run_dir}")
    local = req.workers if req.local_workers is None else req.local_workers
    if local < req.workers:
        _say(req, f"loadbench: waiting for {req.workers - local} remote worker(s): run "
                  f"`loadbench worker --master-host <this host> --master-port {req.master_port}` on each")
    launch = launcher.start(plan, run_dir, local_workers=local, expect_workers=req.workers,
                            bind_host=req.master_bind_host, bind_port=req.master_port)
    code = launcher.wait(launch)
    interrupted = launch.interrupted or code == ExitCode.INTERRUPTED
    manifest = rd.read_json(run_dir / rd.MANIFEST)
    manifest["status"] = "interrupted" if interrupted else ("finished" if code == 0 else "failed")
    manifest["interrupted"] = interrupted
    manifest.setdefault("end_unix_s", None)
    if manifest["end_unix_s"] is None:
        manifest["end_unix_s"] = time.time()
    rd.write_json(run_dir / rd.MANIFEST, manifest)
    summary = write_summary(run_dir)
    _say(req, "")
    _say(req, render_table(summary))
    req_counts = summary["requests"]
    thr = summary["throughput"]
    _say(req, f"\nrequests: {req_counts['ok']} ok, {req_counts['failed']} failed "
              f"({req_counts['error_rate']:.2%}); {thr['requests_per_s']} req/s, "
              f"{thr['output_tokens_per_s']} output tok/s; tokens from {summary['tokens']['source']}")
    for w in summary["warnings"]:
        _say(req, f"warning: {w}")
    _say(req, f"results: {run_dir}")
    _build_report(req, run_dir)
    exit_code = ExitCode.OK
    gates_failed = _check_thresholds(req, profile, summary)
    invalid = _check_validity(req, summary)
    if interrupted:
        exit_code = ExitCode.INTERRUPTED
    elif code not in (0,):
        exit_code = ExitCode.TARGET_FAILED if code == ExitCode.TARGET_FAILED else ExitCode.INTERNAL
    elif req_counts["total"] and req_counts["ok"] == 0:
        exit_code = ExitCode.TARGET_FAILED
        _say(req, "error: no request succeeded against the target (see samples.jsonl for each error)")
    elif req.strict and invalid:
        exit_code = ExitCode.INVALID_RUN
    elif gates_failed:
        exit_code = ExitCode.GATE_FAILED
    return RunResult(run_dir=run_dir, summary=summary, exit_code=exit_code)


def _build_report(req: RunRequest, run_dir: Path) -> None:
    """Plots and reports are derived data: a failure here never loses the run (rebuild with
    ``loadbench report``)."""
    from loadbench.report import build_report

    try:
        files = build_report(run_dir)
    except Exception as exc:  # the measurements are already safe on disk
        _say(req, f"warning: the report could not be built ({type(exc).__name__}: {exc}); "
                  f"retry with: loadbench report {run_dir}")
        return
    html = [f for f in files if f.suffix == ".html"]
    if html:
        _say(req, f"report: {html[0]}")


def _check_thresholds(req: RunRequest, profile: Profile, summary: dict[str, Any]) -> bool:
    """Profile ``thresholds:`` checked against this run alone. True when one failed."""
    if not profile.thresholds:
        return False
    from loadbench.report.gates import evaluate_gates, parse_exprs

    verdict = evaluate_gates(parse_exprs(profile.thresholds), summary, None)
    for r in verdict.results:
        _say(req, f"threshold {'PASS' if r.passed else 'FAIL'}: {r.message}")
    return not verdict.passed


def _check_validity(req: RunRequest, summary: dict[str, Any]) -> list[str]:
    from loadbench.report.validity import check_valid

    reasons = check_valid(summary)
    for r in reasons:
        _say(req, f"{'error' if req.strict else 'note'}: the run may not be valid to judge: {r}")
    return reasons
