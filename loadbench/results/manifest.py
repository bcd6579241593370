"""``manifest.json``: what the run was asked to do, written once by the process that launches the run
(the CLI) before load starts. What happened during the run is in ``status.json`` (``status.py``)."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadbench import __version__, rxstamp
from loadbench.results import run_dir as rd

MANIFEST_SCHEMA = "loadbench.manifest/1"  # folders written before it carry no schema key


def host_info() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "machine": platform.machine(),
        "hostname": platform.node(),
        # how chunks are timed: the kernel's receive stamps, or user space where the platform has none
        # (a TLS connection is timed in user space on any platform; the summary says what each run got)
        "receive_clock": "kernel" if rxstamp.supported() else "user",
    }


@dataclass(frozen=True, slots=True)
class Manifest:
    """``target`` holds url, model and the key's variable NAME (never a key). ``load_plan`` is
    ``LoadPlan.to_json()``; folders written before it have only the stored ``profile``."""

    run_id: str
    name: str | None
    command: tuple[str, ...]
    target: Mapping[str, Any]
    profile: Mapping[str, Any]
    scenario: Mapping[str, Any]
    start_unix_s: float  # when the launching process created the folder (load starts later)
    load_plan: Mapping[str, Any] | None = None
    prompt_scale: float = 1.0
    host: Mapping[str, Any] = field(default_factory=host_info)
    loadbench_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        return {"schema": MANIFEST_SCHEMA, "loadbench_version": self.loadbench_version, "run_id": self.run_id,
                "name": self.name,
                "command": list(self.command), "target": dict(self.target), "profile": dict(self.profile),
                "scenario": dict(self.scenario), "load_plan": None if self.load_plan is None else dict(self.load_plan),
                "prompt_scale": self.prompt_scale, "host": dict(self.host), "start_unix_s": self.start_unix_s}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Manifest:
        """Reads every manifest written so far (older ones also carry the run's status fields, which
        ``RunStatus.from_legacy_manifest`` reads)."""
        return cls(run_id=str(obj.get("run_id") or ""), name=obj.get("name"),
                   command=tuple(obj.get("command") or ()), target=dict(obj.get("target") or {}),
                   profile=dict(obj.get("profile") or {}), scenario=dict(obj.get("scenario") or {}),
                   start_unix_s=float(obj.get("start_unix_s") or 0.0), load_plan=obj.get("load_plan"),
                   prompt_scale=float(obj.get("prompt_scale") or 1.0), host=dict(obj.get("host") or {}),
                   loadbench_version=str(obj.get("loadbench_version") or ""))


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    rd.write_json(run_dir / rd.MANIFEST, manifest.to_json())


def read_manifest(run_dir: Path) -> tuple[Manifest, dict[str, Any]]:
    """(the manifest, its raw JSON for readers of the legacy status fields)."""
    raw = rd.read_json(run_dir / rd.MANIFEST)
    return Manifest.from_json(raw), raw
