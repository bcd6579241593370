"""Reading a run folder into the inputs of ``loadbench.metrics.summarize`` and writing ``summary.json``.

The load plan comes from the manifest (``load_plan``; ``LoadPlan.from_legacy_profile`` for folders
written before it was recorded), never from re-validating the stored profile against today's config
schema, so an old folder still summarises after a profile field changes. Status fields come from
``status.json`` (or the manifest of an older folder).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadbench.errors import InputError
from loadbench.metrics.records import Load, Summary, SummaryTarget
from loadbench.metrics.sample import Sample
from loadbench.metrics.slo import SloSpec
from loadbench.metrics.summarize import PlanFacts, RoundWindow, RunFacts, RunWindow, TracePlan, summarize
from loadbench.plan.load import LoadPlan
from loadbench.results import run_dir as rd
from loadbench.results.hlog import read_hlog
from loadbench.results.manifest import Manifest, read_manifest
from loadbench.results.status import RunStatus, read_status


def plan_of(manifest: Manifest) -> LoadPlan:
    if manifest.load_plan:
        return LoadPlan.from_json(dict(manifest.load_plan))
    return LoadPlan.from_legacy_profile(dict(manifest.profile))


def plan_facts(plan: LoadPlan) -> PlanFacts:
    return PlanFacts(mode=plan.mode, total_s=plan.total_s, warmup_s=plan.warmup_s, cooldown_s=plan.cooldown_s,
                     stages=tuple((s.label, s.start_s, s.end_s) for s in plan.steps()),
                     offered_arrivals=plan.offered_arrivals,
                     trace=None if plan.trace is None else TracePlan(
                         name=Path(plan.trace.path).name, format=plan.trace.format, speed=plan.trace.speed,
                         sample=plan.trace.sample,
                         scheduled=plan.trace.requests if plan.max_requests is None
                         else min(plan.trace.requests, plan.max_requests)))


def _load(profile: Mapping[str, Any], plan: LoadPlan, workers: int | None) -> Load:
    stages = profile.get("stages")
    # closed loop: the most users the plan holds (a staged or peak plan never uses the flat `users`)
    users = int(plan.peak_load()) if plan.mode == "closed" and plan.stages else profile.get("users")
    return Load(mode=plan.mode, users=users, ramp_up_s=profile.get("ramp_up_s"),
                duration_s=profile.get("duration_s"), rps=(profile.get("arrival") or {}).get("rps"),
                stages=None if stages is None else tuple(stages), warmup_s=plan.warmup_s,
                cooldown_s=plan.cooldown_s, max_requests=profile.get("max_requests"), workers=workers)


def facts_of(manifest: Manifest, status: RunStatus, plan: LoadPlan) -> RunFacts:
    profile = manifest.profile
    stall_ms = profile.get("stall_ms")
    return RunFacts(
        run_id=manifest.run_id or None, name=manifest.name,
        target=SummaryTarget(manifest.target.get("url"), manifest.target.get("model"), manifest.target.get("protocol")),
        load=_load(profile, plan, status.workers.expected), slo=SloSpec.from_json(profile.get("slo")),
        stall_ms=None if stall_ms is None else float(stall_ms), interrupted=status.interrupted,
        workers_lost=status.workers.lost, worker_cpu_s=status.workers.cpu_s or None)


def window_of(manifest: Manifest, status: RunStatus) -> RunWindow:
    start = status.load_start_unix_s if status.load_start_unix_s is not None else manifest.start_unix_s
    return RunWindow(start_unix_s=start, end_unix_s=status.end_unix_s,
                     rounds=tuple(RoundWindow(r.load_start_unix_s, r.end_unix_s, r.planned_duration_s)
                                  for r in status.rounds))


def build_summary(run_dir: Path) -> Summary:
    manifest, raw = read_manifest(run_dir)
    status = read_status(run_dir, raw)
    try:
        plan = plan_of(manifest)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{run_dir / rd.MANIFEST}: the load plan cannot be read ({exc})") from exc
    hlog = run_dir / rd.HLOG
    intervals = read_hlog(hlog)[1] if hlog.exists() else []
    return summarize(samples=[Sample.from_dict(s) for s in rd.iter_samples(run_dir)], intervals=intervals,
                     plan=plan_facts(plan), window=window_of(manifest, status), facts=facts_of(manifest, status, plan),
                     timeline=rd.read_timeline(run_dir))
