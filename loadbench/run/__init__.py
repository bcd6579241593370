"""Run orchestration: target resolution and calibration, one run, multi-target runs, sweeps, the exit code.

    request      RunRequest / RunResult
    inputs       profile, scenario and threshold validation; workers per run
    target       --target, or the embedded mock / gateway; the model probe
    calibration  prompt sizing by the target's own token count
    single       one run: manifest, Locust, summary, report, verdict
    targets      one run per profile target, sequential or interleaved
    sweep        `loadbench sweep`: steps until the SLO breaks
    verdict      the exit code as one pure function of what the run produced
    execute      `loadbench run`
"""

from loadbench.run.execute import execute
from loadbench.run.inputs import auto_workers
from loadbench.run.request import RunRequest, RunResult
from loadbench.run.sweep import execute_sweep

__all__ = ["RunRequest", "RunResult", "auto_workers", "execute", "execute_sweep"]
