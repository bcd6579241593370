"""One run: folder, manifest, Locust master and workers, summary, report, verdict."""

from __future__ import annotations

import time
from pathlib import Path

from loadbench import launcher
from loadbench.config import Profile, Scenario
from loadbench.errors import ExitCode
from loadbench.metrics.records import Summary
from loadbench.plan.run import RunPlan, TargetSpec
from loadbench.results.manifest import Manifest, write_manifest
from loadbench.run.calibration import Calibration, calibrate_prompts
from loadbench.run.inputs import auto_workers
from loadbench.run.request import RunRequest, RunResult, say
from loadbench.run.verdict import NO_ANSWER, RunOutcome, exit_code, lost_share, target_lost


def run_one(req: RunRequest, profile: Profile, scenario: Scenario, target: TargetSpec, run_dir: Path) -> RunResult:
    base_url, model = target.url, target.model
    run_dir.mkdir(parents=True, exist_ok=True)
    name = req.name or profile.name or "run"
    run_id = run_dir.name
    api_key_env = target.api_key_env
    created_s = time.time()
    calibration = calibrate_prompts(req, profile, scenario, target) if req.calibrate else Calibration()
    scale = calibration.scale
    workers = req.workers or _sized_workers(req, profile, scenario, target, scale)
    plan = RunPlan.build(run_id, target, profile, scenario, workers, prompt_scale=scale,
                         prompt_overhead=calibration.overhead)
    write_manifest(run_dir, Manifest(run_id=run_id, name=name, command=tuple(req.argv),
                                     target={"url": base_url, "model": model, "api_key_env": api_key_env,
                                             "protocol": target.protocol, "region": target.region},
                                     profile=profile.dump_for_record(),
                                     scenario=scenario.model_dump(mode="json"), start_unix_s=created_s,
                                     prompt_scale=scale, load_plan=plan.load.to_json()))
    say(req, f"loadbench: run {run_id}: {profile.mode} loop, target {base_url} (model {model}), "
              f"results in {run_dir}")
    local = workers if req.local_workers is None else req.local_workers
    if local < workers:
        say(req, f"loadbench: waiting for {workers - local} remote worker(s): run "
                  f"`loadbench worker --master-host <this host> --master-port {req.master_port}` on each")
    launch = launcher.start(plan, run_dir, local_workers=local, expect_workers=workers,
                            bind_host=req.master_bind_host, bind_port=req.master_port,
                            prometheus_port=req.prometheus_port)
    launch_code = launcher.wait(launch)
    from loadbench.report.summary_text import render_console, write_summary_files

    summary = write_summary_files(run_dir)
    say(req, "")
    say(req, render_console(summary))
    for w in summary.warnings:
        say(req, f"warning: {w}")
    say(req, f"results: {run_dir}")
    build_report(req, run_dir)
    gates_failed = _check_thresholds(req, profile, summary, run_dir)
    invalid = _check_validity(req, summary)
    outcome = RunOutcome(launch_code=launch_code, interrupted=launch.interrupted,
                         requests_total=summary.requests.total, requests_ok=summary.requests.ok,
                         gates_failed=gates_failed, invalid=bool(invalid), strict=req.strict,
                         lost_share=_lost_share(run_dir) if summary.requests.by_outcome.get(NO_ANSWER) else 0.0)
    code = exit_code(outcome)
    if code == ExitCode.TARGET_FAILED and summary.requests.total and summary.requests.ok == 0:
        say(req, "error: no request succeeded against the target (see samples.jsonl for each error)")
    elif code == ExitCode.INVALID_RUN and summary.requests.total == 0:
        say(req, "error: the run sent no request, so it measured nothing (see status.json and the workers' "
                 "lines above)")
    elif code == ExitCode.INVALID_RUN and target_lost(outcome):
        say(req, f"error: the target was lost: no request got an answer (connection refused or reset) in "
                 f"the last {outcome.lost_share:.0%} of the load, above the {outcome.error_ceiling:.0%} error "
                 "ceiling; the run cannot be judged (see samples.jsonl)")
    return RunResult(run_dir=run_dir, exit_code=code, summary=summary)


def _lost_share(run_dir: Path) -> float:
    """``verdict.lost_share`` over the run's samples and its load span (the plan's end, or the
    stop if earlier)."""
    from loadbench.results import run_dir as rd
    from loadbench.results.status import read_status

    status = read_status(run_dir)
    start_s = status.load_start_unix_s
    if start_s is None:
        return 0.0
    ends = [e for e in (status.end_unix_s, start_s + (status.planned_duration_s or 0.0)) if e and e > start_s]
    if not ends:
        return 0.0
    samples = ((int(s["intended_unix_ns"]), str(s["outcome"])) for s in rd.iter_samples(run_dir)
               if isinstance(s.get("intended_unix_ns"), int))
    return lost_share(samples, int(start_s * 1e9), int(min(ends) * 1e9))


def _sized_workers(req: RunRequest, profile: Profile, scenario: Scenario, target: TargetSpec,
                   scale: float) -> int:
    """--workers by default: users or rps, and in a streamed closed-loop run the chunk rate from
    the target's ITL measured by one probe stream (skipped with --no-calibrate)."""
    from loadbench.run.chunk_rate import expected_chunks_per_s, measure_itl_s

    closed_stream = profile.stream and profile.load_plan().mode == "closed"
    itl_s = measure_itl_s(req, profile, scenario, target, scale) if req.calibrate and closed_stream else None
    workers = auto_workers(profile, itl_s=itl_s)
    chunks = expected_chunks_per_s(profile.load_plan().peak_load(), itl_s)
    if chunks is not None and itl_s is not None:
        say(req, f"loadbench: target ITL {itl_s * 1000:.1f} ms: up to {chunks:,.0f} chunks/s at peak; "
                  f"{workers} worker(s)")
    return workers


def build_report(req: RunRequest, run_dir: Path) -> None:
    """Plots and reports are derived data: a failure here never loses the run (rebuild with
    ``loadbench report``)."""
    from loadbench.report import build_report as build_report_files

    try:
        files = build_report_files(run_dir)
    except Exception as exc:  # the measurements are already safe on disk
        say(req, f"warning: the report could not be built ({type(exc).__name__}: {exc}); "
                  f"retry with: loadbench report {run_dir}")
        return
    html = [f for f in files if f.suffix == ".html"]
    if html:
        say(req, f"report: {html[0]}")


def _check_thresholds(req: RunRequest, profile: Profile, summary: Summary, run_dir: Path) -> bool:
    """Profile ``thresholds:`` checked at the end: absolute ones against this run, relative ones
    (``+10%``) against ``--baseline`` with the same noise rules as ``loadbench compare``. True when
    one failed."""
    if not profile.thresholds:
        return False
    from loadbench.report.gates import evaluate_gates, parse_exprs

    exprs = parse_exprs(profile.thresholds)
    if req.baseline:
        from loadbench.report.compare import compare_runs, render_markdown

        comparison = compare_runs(list(req.baseline), run_dir, exprs)
        (run_dir / "compare.md").write_text(render_markdown(comparison))
        verdict = comparison.verdict
    else:
        verdict = evaluate_gates(exprs, summary, None)
    for r in verdict.results:
        say(req, f"threshold {'PASS' if r.passed else 'FAIL'}: {r.message}")
    return not verdict.passed


def _check_validity(req: RunRequest, summary: Summary) -> list[str]:
    from loadbench.report.validity import check_valid

    reasons = check_valid(summary, strict=req.strict)
    for r in reasons:
        say(req, f"{'error' if req.strict else 'note'}: the run may not be valid to judge: {r}")
    return reasons
