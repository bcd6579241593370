"""`loadbench report` and `loadbench compare` on run folders written before the typed run records."""

from __future__ import annotations

import shutil
from pathlib import Path

from loadbench.errors import ExitCode
from tests.conftest import run_loadbench
from tests.metrics.test_records import OLD_FOLDERS


def test_report_and_compare_read_old_folders(tmp_path: Path) -> None:
    copies = [shutil.copytree(f, tmp_path / f.name) for f in OLD_FOLDERS]
    for copy in copies:
        r = run_loadbench("report", str(copy))
        assert r.returncode == ExitCode.OK, r.stderr
        md = (copy / "report.md").read_text()
        assert "| ttft" in md and "None" not in md and "nan" not in md
        assert (copy / "plots" / "over_time.png").stat().st_size > 10_000
    opened = tmp_path / "open-v1"
    assert "SLO met" in (opened / "report.md").read_text()  # the stored verdict, shown
    closed = tmp_path / "closed-v1"
    r = run_loadbench("compare", str(closed), str(closed), "--min-samples", "0", "--out", str(tmp_path / "cmp"))
    assert r.returncode == ExitCode.OK, r.stdout + r.stderr
    assert "ttft.p50" in r.stdout and "Between-run noise is unknown" in r.stdout
    r = run_loadbench("compare", str(closed), str(opened), "--min-samples", "0", "--out", str(tmp_path / "cmp"),
                      "--fail-on", "ttft.p50 > 1s")
    assert r.returncode == ExitCode.OK, r.stdout + r.stderr
    assert "load differs: mode 'closed' (baseline) vs 'open' (run)" in r.stdout
