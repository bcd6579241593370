"""Multi-target runs: the same seeded workload against each target in turn, or interleaved in rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadbench.config import Profile, Scenario
from loadbench.errors import ExitCode, InputError
from loadbench.plan.run import TargetSpec
from loadbench.results import run_dir as rd
from loadbench.run.request import RunRequest, RunResult, say
from loadbench.run.single import build_report, run_one
from loadbench.run.target import check_target, target_spec


def run_targets(req: RunRequest, profile: Profile, scenario: Scenario) -> RunResult:
    """The same seeded workload against each target in turn: ``<folder>/targets/<name>/``."""
    specs = [_target_profile_and_spec(req, profile, t) for t in profile.targets]
    for sub_profile, target in specs:
        check_target(req, sub_profile, scenario, target)
    parent = req.run_dir or rd.new_run_dir(req.out_dir, req.name or profile.name or "compare")
    (parent / "targets").mkdir(parents=True, exist_ok=True)
    if profile.interleave:
        results = _run_interleaved(req, profile, scenario, specs, parent)
    else:
        results = []
        for (sub_profile, target) in specs:
            say(req, f"\n== target {target.name}: {target.url} (model {target.model})")
            results.append(run_one(req, sub_profile, scenario, target, parent / "targets" / target.name))
    rd.write_json(parent / rd.TARGETS, {"schema": rd.TARGETS_SCHEMA, "interleave": profile.interleave,
                                            "order": [t.name for t in profile.targets]})
    build_report(req, parent)
    worst = max((r.exit_code for r in results), key=lambda c: (c != ExitCode.OK, int(c)))
    return RunResult(run_dir=parent, exit_code=worst,
                     parts={t.name: r for t, r in zip(profile.targets, results, strict=True)})


INTERLEAVE_ROUNDS = 3


def _run_interleaved(req: RunRequest, profile: Profile, scenario: Scenario,
                     specs: list[tuple[Profile, TargetSpec]], parent: Path) -> list[RunResult]:
    """Rounds of (target A, target B, ...), each a short run of duration / rounds, so drift over time
    (time of day, a noisy neighbour) hits every target alike; each target's rounds are then merged
    exactly into ``targets/<name>/``. Every round replays the same seeded request stream."""
    from loadbench.report.summary_text import write_summary_files
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
            round_profile = sub_profile.with_load(duration_s=sub_profile.total_duration_s / INTERLEAVE_ROUNDS,
                                                  source=f"interleave round {k}")
            say(req, f"\n== round {k + 1}/{INTERLEAVE_ROUNDS}, target {target.name}: {target.url}")
            folder = parent / "targets" / target.name / "rounds" / str(k)
            res = run_one(req, round_profile, scenario, target, folder)
            rounds[target.name].append(folder)
            if res.exit_code == ExitCode.INTERRUPTED:
                interrupted = True
                break
    results = []
    for _, target in specs:
        dst = parent / "targets" / target.name
        merge_runs(dst, rounds[target.name])
        summary = write_summary_files(dst)
        results.append(RunResult(run_dir=dst, exit_code=ExitCode.INTERRUPTED if interrupted else ExitCode.OK,
                                 summary=summary))
    return results


def _target_profile_and_spec(req: RunRequest, profile: Profile, t: Any) -> tuple[Profile, TargetSpec]:
    sub_profile = profile.with_load(stream=t.options.stream, timeout_s=t.options.timeout_s,
                                    source=f"profile targets[{t.name}].options")
    target = target_spec(req, sub_profile, t.url.rstrip("/"), t.model or req.model or profile.model,
                          name=t.name, api_key_env=t.api_key_env, include_usage=t.options.include_usage,
                          headers=t.options.headers, protocol=t.protocol, region=t.region, auth=t.auth)
    return sub_profile, target
