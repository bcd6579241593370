"""Helpers of the eval tests: datasets with known labels, suites pointing at real mocks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from loadbench.eval.scorecard import Scorecard

LABELS = ("billing", "technical", "account", "shipping")
FAST = ("--ttft-ms", "0", "--itl-ms", "0")  # mock timing for tests that only score outputs


def label_dataset(path: Path, n: int, kind: str = "representative") -> Path:
    """n classification cases, labels round-robin over LABELS."""
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"c{i:03d}", "kind": kind, "tags": ["t"],
                                 "messages": [{"role": "user", "content": f"ticket number {i}: help please"}],
                                 "label": LABELS[i % len(LABELS)]}) + "\n")
    return path


def write_suite(tmp: Path, dataset: Path, targets: Sequence[dict[str, Any]], **extra: Any) -> Path:
    suite = {"name": "t", "datasets": [str(dataset)], "repeats": 1, "concurrency": 8,
             "request": {"max_tokens": 16, "temperature": 0},
             "criteria": [{"name": "label", "type": "classification"}], "targets": list(targets), **extra}
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def pricing_file(tmp: Path, models: dict[str, dict[str, float]], as_of: str = "2026-11-01") -> Path:
    path = tmp / "pricing.yaml"
    path.write_text(yaml.safe_dump({"currency": "USD", "source": "test prices", "as_of": as_of, "models": models}))
    return path


def only_scorecard(out: Path) -> tuple[Path, Scorecard]:
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0], Scorecard.from_json(json.loads((folders[0] / "scorecard.json").read_text()))
