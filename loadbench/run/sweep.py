"""`loadbench sweep`: one run per load step until the SLO breaks; sweep.json names the capacity."""

from __future__ import annotations

from typing import Any

from loadbench.errors import ExitCode, InputError
from loadbench.procs import ServerProcess
from loadbench.results import run_dir as rd
from loadbench.run.inputs import load_inputs
from loadbench.run.request import RunRequest, RunResult, say
from loadbench.run.single import build_report, run_one
from loadbench.run.target import check_target, single_target


def _over_saturation(res: RunResult) -> str | None:
    """The step's over-saturation verdict: why the master stopped it early, or None."""
    from loadbench.metrics.saturation import OVER_SATURATED
    from loadbench.results.status import read_status

    try:
        reason = read_status(res.run_dir).stop_reason
    except (OSError, ValueError, KeyError):
        return None
    return reason if reason and reason.startswith(OVER_SATURATED) else None


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
    servers: list[ServerProcess] = []
    steps: list[dict[str, Any]] = []
    doc: dict[str, Any] = {"schema": rd.SWEEP_SCHEMA, "name": req.name or profile.name or "sweep",
                           "load_unit": sweep.variable, "slo": profile.slo.model_dump(exclude_none=True),
                           "steps": steps, "capacity": None}
    parts: dict[str, RunResult] = {}
    exit_code = ExitCode.OK
    try:
        target = single_target(req, profile, servers)
        check_target(req, profile, scenario, target)
        parent = req.run_dir or rd.new_run_dir(req.out_dir, req.name or profile.name or "sweep")
        for k, value in enumerate(sweep.values()):
            step_profile = profile.with_load(
                users=int(value) if sweep.variable == "users" else None,
                rps=value if sweep.variable == "rps" else None,
                duration_s=sweep.hold_s, source=f"sweep step {k}")
            say(req, f"\n== sweep step {k}: {sweep.variable} = {value:g}")
            res = run_one(req, step_profile, scenario, target, parent / "steps" / f"{k}-{value:g}")
            s = res.summary
            assert s is not None  # one target's run
            parts[f"{k}-{value:g}"] = res
            over = _over_saturation(res)
            # an over-saturated step never counts as capacity: its queue was growing when it was stopped
            met = (s.slo is not None and s.slo.met and res.exit_code in (ExitCode.OK, ExitCode.GATE_FAILED)
                   and over is None)
            steps.append({"index": k, "load": value, "dir": f"steps/{k}-{value:g}",
                          "throughput_rps": s.throughput.requests_per_s,
                          "output_tokens_per_s": s.throughput.output_tokens_per_s,
                          "goodput_rps": s.throughput.goodput_rps, "slo_met": met,
                          "slo_reasons": list(s.slo.reasons) if s.slo is not None else [],
                          "valid": not s.generator.saturated and s.requests.total > 0,
                          "over_saturated": over})
            cap = max_passing_load([(st["load"], st["slo_met"]) for st in steps])
            doc["capacity"] = next(({"load": st["load"], "throughput_rps": st["throughput_rps"],
                                     "goodput_rps": st["goodput_rps"]} for st in steps if st["load"] == cap), None)
            rd.write_json(parent / rd.SWEEP, doc)
            if res.exit_code == ExitCode.INTERRUPTED:
                exit_code = ExitCode.INTERRUPTED
                break
            if s.requests.total == 0:  # exit 3 or a master failure: never a judged step
                say(req, f"loadbench: sweep step {k} ({sweep.variable} = {value:g}) measured nothing; the sweep "
                         "stops: the SLO was not judged at this load, so the capacity is known only below it")
                exit_code = ExitCode.INVALID_RUN
                break
            if steps[-1]["over_saturated"]:
                doc["over_saturated_at"] = value
                say(req, f"loadbench: the target was over-saturated at {sweep.variable} = {value:g}, the step was "
                         f"stopped early ({steps[-1]['over_saturated']}); the sweep stops at this knee")
                break
            if not met:
                why = "; ".join(steps[-1]["slo_reasons"]) or f"the step ended with {res.exit_code.name}"
                say(req, f"loadbench: SLO missed at {sweep.variable} = {value:g}: {why}")
                break
    finally:
        for server in reversed(servers):
            server.stop()
    rd.write_json(parent / rd.SWEEP, doc)
    build_report(req, parent)
    if steps:
        from loadbench.report.summary_text import render_sweep_console

        say(req, "\n" + render_sweep_console(parent))
    say(req, f"results: {parent}")
    return RunResult(run_dir=parent, exit_code=exit_code, parts=parts)
