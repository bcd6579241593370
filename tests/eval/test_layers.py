"""The eval core is pure: importing it pulls in no HTTP client, no server, no Locust/gevent and no
matplotlib; the runner adds only the aiohttp client."""

from __future__ import annotations

import json
import subprocess
import sys

CORE = ("dataset", "suite", "criteria", "classify", "stats", "consistency", "decision", "aggregate",
        "scorecard", "records", "expand", "probes", "judging", "compare", "budget", "tasks", "agentscore",
        "agentstats", "yamlfile")


def _loaded(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    code = ("import json, sys; " + "; ".join(f"import {m}" for m in modules)
            + f"; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(roots)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return list(json.loads(out))


def test_the_eval_core_imports_no_io_layers() -> None:
    assert _loaded([f"loadbench.eval.{m}" for m in CORE], ("aiohttp", "gevent", "locust", "matplotlib")) == []


def test_the_runner_and_judge_import_no_locust_or_gevent() -> None:
    mods = ["loadbench.eval.runner", "loadbench.eval.judge", "loadbench.eval.workflow", "loadbench.mock.answers"]
    assert _loaded(mods, ("gevent", "locust", "matplotlib")) == []
