"""The run as a sequence: validate -> target -> folder -> Locust -> summary -> verdict.

Everything that can be wrong with the input fails before any load is sent.
"""

from __future__ import annotations

import math
import os
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadbench import launcher
from loadbench.config import Profile, Scenario, load_profile, load_scenario, profile_from_dict
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
    workers: int | None = None  # workers expected to take part (None: auto_workers)
    local_workers: int | None = None  # started here (None: = workers; 0 with --master)
    master_bind_host: str = "127.0.0.1"
    master_port: int | None = None
    strict: bool = False
    argv: list[str] = field(default_factory=list)
    quiet: bool = False
    mock_args: list[str] = field(default_factory=list)
    baseline: Path | None = None  # run folder that relative thresholds compare against
    calibrate: bool = True  # size synthetic prompts by the target's own token count first
    embedded: str = "mock"  # without --target: "mock" or "gateway" (two mocks behind the gateway)
    run_dir: Path | None = None  # explicit folder (sweep steps, targets); default results/<time>-<name>


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


USERS_PER_WORKER = 250  # measured capacity of one worker core: docs/generator.md
RPS_PER_WORKER = 200.0


def auto_workers(profile: Profile, cpus: int | None = None) -> int:
    """One worker per core, capped by what the load needs at its peak."""
    cpus = cpus or os.cpu_count() or 1
    if profile.mode == "open":
        peak_rps = max((max(s.rps_start, s.rps_end) for s in profile.rate_segments()), default=0.0)
        need = math.ceil(peak_rps / RPS_PER_WORKER)
    else:
        peak_users = max((s.users for s in profile.closed_stages()), default=profile.users)
        need = math.ceil(peak_users / USERS_PER_WORKER)
    return max(1, min(cpus, need))


def load_inputs(req: RunRequest) -> tuple[Profile, Scenario]:
    from loadbench.report.gates import parse_exprs

    profile = load_profile(req.profile_path)
    profile = profile.apply_overrides(**{k: v for k, v in req.overrides.items() if v is not None})
    scenario = load_scenario(req.scenario_path)
    parse_exprs(profile.thresholds)  # a threshold that does not parse fails before any load
    if req.baseline is not None and not (req.baseline / rd.SUMMARY).is_file():
        raise InputError(f"--baseline: {req.baseline} has no {rd.SUMMARY} (pass a loadbench run folder)")
    if req.target is not None and not req.target.startswith(("http://", "https://")):
        raise InputError(f"--target: {req.target!r} is not an http(s) URL (example: http://127.0.0.1:8001/v1)")
    return profile, scenario


def _target_spec(req: RunRequest, profile: Profile, base_url: str, model: str | None,
                 name: str = "default", api_key_env: str | None = None, include_usage: bool | None = None,
                 headers: dict[str, str] | None = None) -> TargetSpec:
    key_env = api_key_env or req.api_key_env
    if model is None:
        model = resolve_model(base_url, os.environ.get(key_env) if key_env else None)
    return TargetSpec(url=base_url, model=model, name=name, api_key_env=key_env,
                      include_usage=profile.include_usage if include_usage is None else include_usage,
                      headers=dict(headers or {}))


def execute(req: RunRequest) -> RunResult:
    """A single run, or one sub-run per target when the profile lists several targets."""
    profile, scenario = load_inputs(req)
    if req.target is None and profile.targets:
        return _run_targets(req, profile, scenario)
    servers: list[ServerProcess] = []
    try:
        target = _single_target(req, profile, servers)
        run_dir = req.run_dir or rd.new_run_dir(req.out_dir, req.name or profile.name or "run")
        return _run(req, profile, scenario, target, run_dir)
    finally:
        for server in reversed(servers):
            server.stop()


def _single_target(req: RunRequest, profile: Profile, servers: list[ServerProcess]) -> TargetSpec:
    """``--target``, or the embedded mock / gateway (appended to ``servers`` for the caller to stop)."""
    if req.target is not None:
        return _target_spec(req, profile, req.target.rstrip("/"), req.model or profile.model)
    if req.embedded == "gateway":
        started, base_url = _start_embedded_gateway(req, profile)
        servers.extend(started)
        return _target_spec(req, profile, base_url, req.model or EMBEDDED_GATEWAY_MODEL)
    mock = start_server(["mock", "--port", "0", "--seed", str(profile.seed), *req.mock_args])
    servers.append(mock)
    _say(req, f"loadbench: no --target given: started the embedded mock upstream at {mock.base_url}")
    return _target_spec(req, profile, mock.base_url, req.model or profile.model or DEFAULT_MOCK_MODEL)


EMBEDDED_GATEWAY_MODEL = "demo"
# Two mock upstreams with different speeds behind a weighted virtual model: the run's per-target
# breakdown shows the split and each target's own timing.
_EMBEDDED_MOCKS = (("fast", 80, ("--ttft-ms", "50", "--itl-ms", "10")),
                   ("slow", 20, ("--ttft-ms", "120", "--itl-ms", "20")))


def _start_embedded_gateway(req: RunRequest, profile: Profile) -> tuple[list[ServerProcess], str]:
    import tempfile

    import yaml

    servers: list[ServerProcess] = []
    try:
        targets, refs = [], []
        for name, weight, args in _EMBEDDED_MOCKS:
            mock = start_server(["mock", "--port", "0", "--seed", str(profile.seed), *args, *req.mock_args])
            servers.append(mock)
            targets.append({"name": name, "url": mock.base_url, "model": DEFAULT_MOCK_MODEL, "max_connections": 1024})
            refs.append({"target": name, "weight": weight})
        config = {"targets": targets,
                  "virtual_models": [{"name": EMBEDDED_GATEWAY_MODEL, "routing": "weight", "targets": refs}]}
        cfg = Path(tempfile.mkdtemp(prefix="loadbench-gateway-")) / "gateway.yaml"
        cfg.write_text(yaml.safe_dump(config, sort_keys=False))
        gateway = start_server(["gateway", "--config", str(cfg), "--port", "0"])
        servers.append(gateway)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    _say(req, f"loadbench: no --target given: started the embedded gateway at {gateway.base_url} in front of "
              + ", ".join(f"mock '{n}' ({w}%: {' '.join(a)})" for n, w, a in _EMBEDDED_MOCKS))
    return servers, gateway.base_url


def _run_targets(req: RunRequest, profile: Profile, scenario: Scenario) -> RunResult:
    """The same seeded workload against each target in turn: ``<folder>/targets/<name>/``."""
    parent = req.run_dir or rd.new_run_dir(req.out_dir, req.name or profile.name or "compare")
    (parent / "targets").mkdir(parents=True, exist_ok=True)
    specs = [_target_profile_and_spec(req, profile, t) for t in profile.targets]
    if profile.interleave:
        results = _run_interleaved(req, profile, scenario, specs, parent)
    else:
        results = []
        for (sub_profile, target) in specs:
            _say(req, f"\n== target {target.name}: {target.url} (model {target.model})")
            results.append(_run(req, sub_profile, scenario, target, parent / "targets" / target.name))
    rd.write_json(parent / "targets.json", {"schema": "loadbench.targets/1", "interleave": profile.interleave,
                                            "order": [t.name for t in profile.targets]})
    _build_report(req, parent)
    worst = max((r.exit_code for r in results), key=lambda c: (c != ExitCode.OK, int(c)))
    return RunResult(run_dir=parent, summary={"targets": {t.name: r.summary for t, r in
                                                          zip(profile.targets, results, strict=True)}},
                     exit_code=worst)


INTERLEAVE_ROUNDS = 3


def _run_interleaved(req: RunRequest, profile: Profile, scenario: Scenario,
                     specs: list[tuple[Profile, TargetSpec]], parent: Path) -> list[RunResult]:
    """Rounds of (target A, target B, ...), each a short run of duration / rounds, so drift over time
    (time of day, a noisy neighbour) hits every target alike; each target's rounds are then merged
    exactly into ``targets/<name>/``. Every round replays the same seeded request stream."""
    from loadbench.metrics.summary import write_summary
    from loadbench.results.merge import merge_runs

    if profile.stages or profile.peak or profile.sweep:
        raise InputError("profile: interleave: true needs a flat load plan (users or one arrival rate): "
                         "stages, peak and sweep plans cannot be cut into rounds")
    round_s = profile.total_duration_s / INTERLEAVE_ROUNDS
    if profile.warmup_s + profile.cooldown_s >= round_s:
        raise InputError(f"profile: interleave: each of the {INTERLEAVE_ROUNDS} rounds lasts {round_s:g} s, "
                         f"no longer than warmup_s + cooldown_s; raise duration_s or lower the warm-up")
    rounds: dict[str, list[Path]] = {t.name: [] for _, t in specs}
    interrupted = False
    for k in range(INTERLEAVE_ROUNDS):
        if interrupted:
            break
        for sub_profile, target in specs:
            share = {**sub_profile.model_dump(mode="json"),
                     "duration_s": sub_profile.total_duration_s / INTERLEAVE_ROUNDS}
            round_profile = profile_from_dict(share, source=f"interleave round {k}")
            _say(req, f"\n== round {k + 1}/{INTERLEAVE_ROUNDS}, target {target.name}: {target.url}")
            folder = parent / "targets" / target.name / "rounds" / str(k)
            res = _run(req, round_profile, scenario, target, folder)
            rounds[target.name].append(folder)
            if res.exit_code == ExitCode.INTERRUPTED:
                interrupted = True
                break
    results = []
    for _, target in specs:
        dst = parent / "targets" / target.name
        merge_runs(dst, rounds[target.name])
        summary = write_summary(dst)
        results.append(RunResult(run_dir=dst, summary=summary,
                                 exit_code=ExitCode.INTERRUPTED if interrupted else ExitCode.OK))
    return results


def _target_profile_and_spec(req: RunRequest, profile: Profile, t: Any) -> tuple[Profile, TargetSpec]:
    sub_profile = profile
    updates: dict[str, Any] = {}
    if t.options.stream is not None:
        updates["stream"] = t.options.stream
    if t.options.timeout_s is not None:
        updates["timeout_s"] = t.options.timeout_s
    if updates:
        sub_profile = profile_from_dict({**profile.model_dump(mode="json"), **updates})
    target = _target_spec(req, sub_profile, t.url.rstrip("/"), t.model or req.model or profile.model,
                          name=t.name, api_key_env=t.api_key_env, include_usage=t.options.include_usage,
                          headers=t.options.headers)
    return sub_profile, target


def _run(req: RunRequest, profile: Profile, scenario: Scenario, target: TargetSpec, run_dir: Path) -> RunResult:
    base_url, model = target.url, target.model
    run_dir.mkdir(parents=True, exist_ok=True)
    name = req.name or profile.name or "run"
    run_id = run_dir.name
    api_key_env = target.api_key_env
    manifest = rd.new_manifest(run_id=run_id, argv=req.argv, target={"url": base_url, "model": model,
                                                                     "api_key_env": api_key_env},
                               profile=profile.model_dump(mode="json"),
                               scenario=scenario.model_dump(mode="json"), start_unix_s=time.time())
    workers = req.workers or auto_workers(profile)
    scale = _calibrate(req, profile, scenario, target) if req.calibrate else 1.0
    manifest["name"] = name
    manifest["prompt_scale"] = scale
    rd.write_json(run_dir / rd.MANIFEST, manifest)
    plan = RunPlan(run_id=run_id, target=target, profile=profile.model_dump(mode="json"),
                   scenario=scenario.model_dump(mode="json"), seed=profile.seed,
                   interval_s=profile.interval_s, workers=workers, extra={"prompt_scale": scale})
    _say(req, f"loadbench: run {run_id}: {profile.mode} loop, target {base_url} (model {model}), "
              f"results in {run_dir}")
    local = workers if req.local_workers is None else req.local_workers
    if local < workers:
        _say(req, f"loadbench: waiting for {workers - local} remote worker(s): run "
                  f"`loadbench worker --master-host <this host> --master-port {req.master_port}` on each")
    launch = launcher.start(plan, run_dir, local_workers=local, expect_workers=workers,
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
    gates_failed = _check_thresholds(req, profile, summary, run_dir)
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


def _check_thresholds(req: RunRequest, profile: Profile, summary: dict[str, Any], run_dir: Path) -> bool:
    """Profile ``thresholds:`` checked at the end: absolute ones against this run, relative ones
    (``+10%``) against ``--baseline`` with the same noise rules as ``loadbench compare``. True when
    one failed."""
    if not profile.thresholds:
        return False
    from loadbench.report.gates import evaluate_gates, parse_exprs

    exprs = parse_exprs(profile.thresholds)
    if req.baseline is not None:
        from loadbench.report.compare import compare_runs, render_markdown

        comparison = compare_runs(req.baseline, run_dir, exprs)
        (run_dir / "compare.md").write_text(render_markdown(comparison))
        verdict = comparison.verdict
    else:
        verdict = evaluate_gates(exprs, summary, None)
    for r in verdict.results:
        _say(req, f"threshold {'PASS' if r.passed else 'FAIL'}: {r.message}")
    return not verdict.passed


def _check_validity(req: RunRequest, summary: dict[str, Any]) -> list[str]:
    from loadbench.report.validity import check_valid

    reasons = check_valid(summary)
    for r in reasons:
        _say(req, f"{'error' if req.strict else 'note'}: the run may not be valid to judge: {r}")
    return reasons


def execute_sweep(req: RunRequest) -> RunResult:
    """Step the load up (users or rps) until the SLO breaks or the maximum is reached.

    Each step is a normal run in ``<folder>/steps/<k>-<load>/``; ``sweep.json`` (rewritten after every
    step, so an interrupted sweep keeps what it measured) names the capacity: the highest load of the
    leading run of steps that met the SLO."""
    from loadbench.workload.sweep import max_passing_load

    profile, scenario = load_inputs(req)
    sweep = profile.sweep
    if sweep is None:
        raise InputError("sweep: the profile has no `sweep:` block (variable, start, step, max, hold_s); "
                         "see profiles/sweep.yaml")
    if profile.slo is None:
        raise InputError("sweep: the profile has no `slo:` block; a sweep needs an SLO to find the capacity "
                         "(e.g. slo: {ttft_ms: {p95: 500}, error_rate: 0.01})")
    parent = req.run_dir or rd.new_run_dir(req.out_dir, req.name or profile.name or "sweep")
    servers: list[ServerProcess] = []
    steps: list[dict[str, Any]] = []
    doc: dict[str, Any] = {"schema": "loadbench.sweep/1", "name": req.name or profile.name or "sweep",
                           "load_unit": sweep.variable, "slo": profile.slo.model_dump(exclude_none=True),
                           "steps": steps, "capacity": None}
    exit_code = ExitCode.OK
    try:
        target = _single_target(req, profile, servers)
        base = profile.model_dump(mode="json")
        for k, value in enumerate(sweep.values()):
            step = {**base, "sweep": None, "stages": None, "peak": None, "duration_s": sweep.hold_s,
                    "max_requests": None, "targets": []}
            if sweep.variable == "users":
                step["users"] = int(value)
            else:
                arrival = dict(base.get("arrival") or {"kind": "poisson"})
                for key in ("rps_start", "rps_end", "ramp_up_s"):
                    arrival.pop(key, None)
                step["arrival"] = {**arrival, "rps": value}
            step_profile = profile_from_dict(step, source=f"sweep step {k}")
            _say(req, f"\n== sweep step {k}: {sweep.variable} = {value:g}")
            res = _run(req, step_profile, scenario, target, parent / "steps" / f"{k}-{value:g}")
            s = res.summary
            met = bool((s.get("slo") or {}).get("met")) and res.exit_code in (ExitCode.OK, ExitCode.GATE_FAILED)
            steps.append({"index": k, "load": value, "dir": f"steps/{k}-{value:g}",
                          "throughput_rps": s["throughput"]["requests_per_s"],
                          "output_tokens_per_s": s["throughput"]["output_tokens_per_s"],
                          "goodput_rps": s["throughput"]["goodput_rps"], "slo_met": met,
                          "slo_reasons": (s.get("slo") or {}).get("reasons", []),
                          "valid": not s["generator"]["saturated"]})
            cap = max_passing_load([(st["load"], st["slo_met"]) for st in steps])
            doc["capacity"] = next(({"load": st["load"], "throughput_rps": st["throughput_rps"],
                                     "goodput_rps": st["goodput_rps"]} for st in steps if st["load"] == cap), None)
            rd.write_json(parent / "sweep.json", doc)
            if res.exit_code == ExitCode.INTERRUPTED:
                exit_code = ExitCode.INTERRUPTED
                break
            if not met:
                why = "; ".join(steps[-1]["slo_reasons"]) or f"the step ended with {res.exit_code.name}"
                _say(req, f"loadbench: SLO missed at {sweep.variable} = {value:g}: {why}")
                break
    finally:
        for server in reversed(servers):
            server.stop()
    rd.write_json(parent / "sweep.json", doc)
    _build_report(req, parent)
    _say(req, "\n| step | load | req/s | goodput/s | SLO met |\n|---|---|---|---|---|")
    for st in steps:
        _say(req, f"| {st['index']} | {st['load']:g} | {st['throughput_rps']} | {st['goodput_rps']} | "
                  f"{'yes' if st['slo_met'] else 'no'} |")
    cap = doc["capacity"]
    _say(req, f"capacity: {cap['load']:g} {sweep.variable} ({cap['goodput_rps']} good req/s)" if cap
         else "capacity: no step met the SLO")
    _say(req, f"results: {parent}")
    return RunResult(run_dir=parent, summary=doc, exit_code=exit_code)


CALIBRATION_REQUESTS = 4


def _post_json(url: str, body: dict[str, Any], api_key: str | None, timeout_s: float) -> dict[str, Any]:
    request = urllib.request.Request(url, data=orjson.dumps(body), method="POST",
                                     headers={"Content-Type": "application/json"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:
        return dict(orjson.loads(resp.read()))


def _calibrate(req: RunRequest, profile: Profile, scenario: Scenario, target: TargetSpec) -> float:
    """Synthetic prompts are sized in words; the target counts tokens its own way. A few requests
    (max_tokens 1, not streamed, outside the run) measure the ratio from the server's usage, so the
    requested prompt sizes are what the target sees. Datasets are sent as they are."""
    from loadbench.workload.requests import RequestFactory, calibrate

    synthetic = (scenario.mix is not None and any(m.dataset is None for m in scenario.mix)) or (
        scenario.mix is None and scenario.dataset is None)
    if not synthetic:
        return 1.0
    key = os.environ.get(target.api_key_env) if target.api_key_env else None
    scale = 1.0
    requested: list[int] = []
    reported: list[int] = []
    try:
        for _ in range(2):  # the second round checks the first round's scale
            factory = RequestFactory(scenario, model=target.model, stream=False, include_usage=False,
                                     seed=profile.seed + 7919, prompt_scale=scale)
            requested, reported = [], []
            for _ in range(CALIBRATION_REQUESTS):
                spec = factory.next()
                body = orjson.loads(spec.body)
                body["max_tokens"] = 1
                body.pop("max_completion_tokens", None)
                usage = _post_json(target.url + spec.path, body, key, min(profile.timeout_s, 60.0)).get("usage")
                if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
                    requested.append(spec.prompt_tokens_requested)
                    reported.append(usage["prompt_tokens"])
            if not reported:
                _say(req, "note: the target reports no usage.prompt_tokens: synthetic prompts are sized at "
                          "one token per word (uncalibrated)")
                return 1.0
            new = calibrate(requested, reported, scale)
            if abs(new - scale) / scale < 0.02:
                break
            scale = new
    except Exception as exc:  # calibration is an aid: the run itself reports every failure
        _say(req, f"note: prompt calibration skipped ({type(exc).__name__}: {exc}); one token per word")
        return 1.0
    _say(req, f"loadbench: prompt calibration: scale {scale:.3f} words/token "
              f"(requested {sum(requested)} tokens, target counted {sum(reported)})")
    return scale
