"""The run's inputs, validated before any load: profile with overrides, scenario, thresholds, workers."""

from __future__ import annotations

import math
import os

from loadbench.config import Profile, Scenario, api_key, credentials, load_profile, load_scenario
from loadbench.errors import ConfigError, InputError
from loadbench.report.baseline import expand_baselines
from loadbench.results import run_dir as rd
from loadbench.run.request import RunRequest, say

USERS_PER_WORKER = 250  # measured capacity of one worker core: docs/generator.md
RPS_PER_WORKER = 200.0
# Chunks a second one worker core reads inside the accuracy promise (bench/generator_matrix.py,
# docs/generator.md): past it the loop lag, and with it the client-side delay in P99s, grows.
CHUNKS_PER_WORKER = 20_000.0


def auto_workers(profile: Profile, cpus: int | None = None, itl_s: float | None = None) -> int:
    """One worker per core, capped by what the load needs at its peak: users (or rps) and, when the
    target's ITL is known (closed loop), the chunks a second the peak users ask (users / ITL)."""
    from loadbench.run.chunk_rate import expected_chunks_per_s

    cpus = cpus or os.cpu_count() or 1
    plan = profile.load_plan()
    per_worker = RPS_PER_WORKER if plan.mode == "open" else USERS_PER_WORKER
    need = math.ceil(plan.peak_load() / per_worker)
    chunks = expected_chunks_per_s(plan.peak_load(), itl_s) if plan.mode == "closed" else None
    if chunks is not None:
        need = max(need, math.ceil(chunks / CHUNKS_PER_WORKER))
    return max(1, min(cpus, need))


def load_inputs(req: RunRequest) -> tuple[Profile, Scenario]:
    from loadbench.report.gates import parse_exprs

    profile = load_profile(req.profile_path)
    if req.arrival is not None:
        profile = profile.with_arrival(req.arrival, source="command line")
    profile = profile.apply_overrides(**{k: v for k, v in req.overrides.items() if v is not None})
    scenario = load_scenario(req.scenario_path)
    for i, expr in enumerate(profile.thresholds):  # a threshold that does not parse fails before any load
        try:
            parse_exprs([expr])
        except InputError as exc:
            raise ConfigError(str(req.profile_path or "profile"), f"thresholds[{i}]", str(exc)) from None
    api_key(req.api_key_env)  # a named but unset key variable fails before any server starts
    credentials.check_protocol(req.protocol, "command line", "--protocol")
    for base in expand_baselines(req.baseline):  # a folder of runs names each run
        if not (base / rd.SUMMARY).is_file():
            raise InputError(f"--baseline: {base} has no {rd.SUMMARY} "
                             "(pass a loadbench run folder or a folder of runs)")
    if req.target is not None and not req.target.startswith(("http://", "https://")):
        raise InputError(f"--target: {req.target!r} is not an http(s) URL (example: http://127.0.0.1:8001/v1)")
    if req.target is not None and req.protocol == "openai" and not req.target.rstrip("/").endswith("/v1"):
        say(req, f"note: --target {req.target} does not end in /v1; OpenAI-compatible servers usually serve "
                 "under it (try http://HOST:PORT/v1)")
    return profile, scenario
