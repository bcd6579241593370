"""Start the Locust processes of a run (a master and N local workers) and see them to the end.

The processes run in their own sessions, so a Ctrl-C in the terminal reaches only this process; it
then asks the master to stop (SIGTERM), and the master collects every worker's final report before
it exits. A second Ctrl-C kills everything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import orjson

from loadbench.plan.run import SECRETS_ENV, RunPlan
from loadbench.results import run_dir as rd

PLAN_FILE = "plan.json"
# A local master shares cores with the workers: its once-a-second merging and writing must not hold
# a core while a worker has chunks to read (a late read is a late timestamp). Ten steps of
# niceness give the workers about ten times the master's share under contention (docs/generator.md).
MASTER_NICENESS_STEP = 10


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _python_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "loadbench.workers", *args]


@dataclass(slots=True)
class Launch:
    master: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    interrupted: bool = False


def start(plan: RunPlan, run_dir: Path, *, local_workers: int, expect_workers: int,
          bind_host: str = "127.0.0.1", bind_port: int | None = None, prometheus_port: int | None = None) -> Launch:
    plan_path = run_dir / PLAN_FILE
    rd.write_json(plan_path, plan.to_record())
    port = bind_port or free_port(bind_host if bind_host not in ("*", "0.0.0.0") else "127.0.0.1")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if plan.target.secret_headers:
        env[SECRETS_ENV] = orjson.dumps(plan.target.secrets()).decode()
    master = subprocess.Popen(
        _python_cmd("master", "--plan", str(plan_path), "--run-dir", str(run_dir), "--bind-host", bind_host,
                    "--bind-port", str(port), "--expect-workers", str(expect_workers),
                    "--parent-pid", str(os.getpid()),
                    *(("--prometheus-port", str(prometheus_port)) if prometheus_port is not None else ())),
        env=env, start_new_session=True)
    return _with_workers(Launch(master=master), port, local_workers, env)


def start_web(defaults_path: Path, *, local_workers: int, web_args: list[str], bind_host: str = "127.0.0.1",
              bind_port: int | None = None) -> Launch:
    """``loadbench run --web``: the master with Locust's web UI (loadbench.workers.web) and its workers,
    which stay connected for every run started from the page."""
    port = bind_port or free_port(bind_host if bind_host not in ("*", "0.0.0.0") else "127.0.0.1")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    master = subprocess.Popen(
        _python_cmd("web", "--defaults", str(defaults_path), "--bind-host", bind_host, "--bind-port", str(port),
                    "--expect-workers", str(local_workers), "--parent-pid", str(os.getpid()), *web_args),
        env=env, start_new_session=True)
    return _with_workers(Launch(master=master), port, local_workers, env)


def _with_workers(launch: Launch, port: int, local_workers: int, env: dict[str, str]) -> Launch:
    master = launch.master
    if local_workers:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, master.pid, min(19, os.getpriority(os.PRIO_PROCESS, 0)
                                                            + MASTER_NICENESS_STEP))
    for _ in range(local_workers):
        launch.workers.append(subprocess.Popen(
            _python_cmd("worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                        "--master-pid", str(master.pid)),
            env=env, start_new_session=True, stdout=subprocess.DEVNULL))
    return launch


def wait(launch: Launch, *, kill_after_s: float = 60.0) -> int:
    """Wait for the master; forward the first Ctrl-C/SIGTERM to it, kill everything on the second."""
    signals_seen = 0

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal signals_seen
        signals_seen += 1
        launch.interrupted = True
        if signals_seen == 1:
            print("\nloadbench: stopping, writing what was measured (Ctrl-C again to kill)",
                  file=sys.stderr, flush=True)
            with contextlib.suppress(ProcessLookupError):
                launch.master.send_signal(signum)  # the master records which signal stopped the run
        else:
            _kill_all(launch)

    old_int = signal.signal(signal.SIGINT, forward)
    old_term = signal.signal(signal.SIGTERM, forward)
    try:
        code = launch.master.wait()
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    deadline = time.monotonic() + kill_after_s / 6
    for w in launch.workers:
        try:
            w.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
    return code


def _kill_all(launch: Launch) -> None:
    for p in [launch.master, *launch.workers]:
        with contextlib.suppress(ProcessLookupError):
            p.kill()
