"""The Locust master process on its own: what it answers when the run cannot start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loadbench.config import Profile, Scenario
from loadbench.errors import ExitCode
from loadbench.launcher import PLAN_FILE, free_port
from loadbench.plan.run import RunPlan, TargetSpec
from loadbench.results import run_dir as rd
from tests.conftest import REPO


def write_plan(run_dir: Path) -> Path:
    profile = Profile.model_validate({"users": 1, "duration_s": 2})
    plan = RunPlan.build("r", TargetSpec(url="http://127.0.0.1:9/v1", model="m"), profile, Scenario(), workers=1)
    run_dir.mkdir(parents=True, exist_ok=True)
    rd.write_json(run_dir / PLAN_FILE, plan.to_json())
    return run_dir / PLAN_FILE


def test_workers_missing_has_its_own_exit_code(tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "run")
    r = subprocess.run([sys.executable, "-m", "loadbench.workers", "master", "--plan", str(plan),
                        "--run-dir", str(tmp_path / "run"), "--bind-port", str(free_port()),
                        "--expect-workers", "1", "--wait-workers-s", "0.5"],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == ExitCode.WORKERS_MISSING == 5, r.stdout + r.stderr
    assert "only 0 of 1 workers connected" in r.stdout
