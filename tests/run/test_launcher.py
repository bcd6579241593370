"""The local processes of a run: the master yields the core to the workers that time the streams."""

from __future__ import annotations

import os
from pathlib import Path

from loadbench import launcher
from loadbench.plan.run import RunPlan
from loadbench.results import run_dir as rd
from tests.workers.test_master import write_plan


def test_local_master_runs_nicer_than_its_workers(tmp_path: Path) -> None:
    plan = RunPlan.from_json(rd.read_json(write_plan(tmp_path / "run")))
    launch = launcher.start(plan, tmp_path / "run", local_workers=1, expect_workers=1)
    try:
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, launch.master.pid) == min(19, own + launcher.MASTER_NICENESS_STEP)
        assert os.getpriority(os.PRIO_PROCESS, launch.workers[0].pid) == own
    finally:
        for p in [launch.master, *launch.workers]:
            p.kill()
            p.wait(timeout=30)
