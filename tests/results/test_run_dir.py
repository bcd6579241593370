"""Run folder names: one folder per run, also for runs started in the same second."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from loadbench.results.run_dir import new_run_dir

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def test_runs_in_the_same_second_get_numbered_folders(tmp_path: Path) -> None:
    first = new_run_dir(tmp_path / "results", "demo", NOW)
    second = new_run_dir(tmp_path / "results", "demo", NOW)
    assert first.name == "20261201T120000Z-demo"
    assert second.name == "20261201T120000Z-demo-2"
    assert first.is_dir() and second.is_dir()


def test_runs_started_at_once_never_share_a_folder(tmp_path: Path) -> None:
    # 16 threads at the same instant: a check-then-create would hand two of them one folder (or raise)
    with ThreadPoolExecutor(16) as pool:
        dirs = list(pool.map(lambda _: new_run_dir(tmp_path, "same name!", NOW), range(64)))
    assert len(set(dirs)) == 64
    assert all(d.is_dir() and d.parent == tmp_path for d in dirs)
    assert min(d.name for d in dirs) == "20261201T120000Z-same-name"
