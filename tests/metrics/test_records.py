"""Summary records: every loadbench.summary/1 written so far reads back, and writes the same figures."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from loadbench.metrics.records import SUMMARY_SCHEMA, LatencyStats, Summary

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "runs"
OLD_FOLDERS = sorted(p for p in FIXTURES.iterdir() if p.is_dir())


def stored_subset(stored: Any, written: Any, where: str = "") -> list[str]:
    """Where ``written`` lacks or changes a value of ``stored`` (new keys in ``written`` are fine)."""
    if isinstance(stored, dict):
        if not isinstance(written, dict):
            return [f"{where}: not an object"]
        out = []
        for k, v in stored.items():
            out += [f"{where}.{k}: missing"] if k not in written else stored_subset(v, written[k], f"{where}.{k}")
        return out
    return [] if stored == written else [f"{where}: {stored!r} != {written!r}"]


def test_the_fixtures_are_there() -> None:
    assert {p.name for p in OLD_FOLDERS} >= {"closed-v1", "open-v1"}


@pytest.mark.parametrize("folder", OLD_FOLDERS, ids=lambda p: p.name)
def test_old_summaries_read_and_write_the_same_figures(folder: Path) -> None:
    stored = json.loads((folder / "summary.json").read_text())
    record = Summary.from_json(stored)
    assert stored_subset(stored, record.to_json()) == []
    assert Summary.from_json(record.to_json()) == record
    assert record.stages == () and record.stalls is None  # written before these existed


def test_the_subset_check_sees_a_changed_figure() -> None:
    assert stored_subset({"a": {"b": 1}}, {"a": {"b": 2}}) == [".a.b: 1 != 2"]
    assert stored_subset({"a": 1}, {}) == [".a: missing"]


def test_other_schemas_and_missing_sections_are_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("loadbench.summary/2")):
        Summary.from_json({"schema": "loadbench.summary/2"})
    with pytest.raises(ValueError, match="'requests'"):
        Summary.from_json({"schema": SUMMARY_SCHEMA, "metrics": {}, "load": {}})


def test_statistics_by_written_and_stored_name() -> None:
    s = LatencyStats(count=3, p99_9=12.5, p95=10.0)
    assert s.stat("p99.9") == s.stat("p99_9") == 12.5
    assert s.stat("count") == 3.0 and s.stat("p42") is None
