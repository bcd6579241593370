"""`loadbench run`: validate -> target -> one run, or one run per target of the profile.

Everything that can be wrong with the input fails before any load is sent.
"""

from __future__ import annotations

from loadbench.procs import ServerProcess
from loadbench.results import run_dir as rd
from loadbench.run.inputs import load_inputs
from loadbench.run.request import RunRequest, RunResult
from loadbench.run.single import run_one
from loadbench.run.target import check_target, single_target
from loadbench.run.targets import run_targets


def execute(req: RunRequest) -> RunResult:
    """A single run, or one sub-run per target when the profile lists several targets."""
    profile, scenario = load_inputs(req)
    if req.target is None and profile.targets:
        return run_targets(req, profile, scenario)
    servers: list[ServerProcess] = []
    try:
        target = single_target(req, profile, servers)
        check_target(req, profile, scenario, target)
        run_dir = req.run_dir or rd.new_run_dir(req.out_dir, req.name or profile.name or "run")
        return run_one(req, profile, scenario, target, run_dir)
    finally:
        for server in reversed(servers):
            server.stop()
