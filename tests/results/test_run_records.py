"""Run-folder records: manifest.json (the launching process), status.json (the master), and the
summary rebuilt from a folder, including folders written before these records existed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loadbench.metrics.records import Summary
from loadbench.results import run_dir as rd
from loadbench.results.manifest import Manifest, read_manifest, write_manifest
from loadbench.results.status import Round, RunStatus, Workers, read_status, write_status
from loadbench.results.summary_io import build_summary, plan_of
from tests.metrics.test_records import OLD_FOLDERS, stored_subset


@pytest.mark.parametrize("folder", OLD_FOLDERS, ids=lambda p: p.name)
def test_old_folders_resummarise_to_their_stored_figures(folder: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(folder, tmp_path / folder.name)
    stored = json.loads((copy / rd.SUMMARY).read_text())
    again = build_summary(copy)
    assert stored_subset(stored, again.to_json()) == []
    assert again == Summary.from_json(again.to_json())


def test_old_manifests_give_the_plan_and_the_status(tmp_path: Path) -> None:
    closed, raw = read_manifest(OLD_FOLDERS[0])
    assert closed.load_plan is None and plan_of(closed).mode == "closed"
    status = read_status(OLD_FOLDERS[0], raw)
    assert status.state == "finished" and status.stop_reason == "duration reached"
    assert status.load_start_unix_s == raw["load_start_unix_s"] and status.workers.seen == ("w0",)
    opened, _ = read_manifest(next(p for p in OLD_FOLDERS if p.name == "open-v1"))
    plan = plan_of(opened)
    assert plan.mode == "open" and plan.offered_arrivals(1.0, 5.0) == pytest.approx(40.0)


def test_an_old_folder_summarises_after_a_profile_field_changed(tmp_path: Path) -> None:
    # a field today's schema does not know, and one it would reject: the plan is read leniently
    copy = shutil.copytree(OLD_FOLDERS[0], tmp_path / "old")
    manifest = json.loads((copy / rd.MANIFEST).read_text())
    manifest["profile"]["retired_field"] = {"x": 1}
    manifest["profile"]["interval_s"] = -1
    (copy / rd.MANIFEST).write_text(json.dumps(manifest))
    assert build_summary(copy).requests.ok == 24


def test_manifest_and_status_round_trip(tmp_path: Path) -> None:
    m = Manifest(run_id="r", name="n", command=("loadbench", "run"), target={"url": "u", "model": "m",
                 "api_key_env": "KEY_VAR"}, profile={"users": 2}, scenario={}, start_unix_s=1.5,
                 load_plan={"mode": "closed"}, prompt_scale=0.9)
    write_manifest(tmp_path, m)
    assert read_manifest(tmp_path)[0] == m
    s = RunStatus(state="interrupted", load_start_unix_s=2.0, end_unix_s=5.0, planned_duration_s=10.0,
                  stop_reason="interrupted (Ctrl-C, SIGINT)", signal="SIGINT", interrupted=True,
                  workers=Workers(2, ("w0", "w1"), ("w1",), {"w0": 0.5}), rounds=(Round(2.0, 5.0, 10.0),))
    write_status(tmp_path, s)
    assert read_status(tmp_path) == s
    assert json.loads((tmp_path / rd.STATUS).read_text())["signal"] == "SIGINT"


def test_status_json_wins_over_the_manifest(tmp_path: Path) -> None:
    write_status(tmp_path, RunStatus(state="running", load_start_unix_s=3.0))
    assert read_status(tmp_path, {"status": "finished", "load_start_unix_s": 1.0}).load_start_unix_s == 3.0
