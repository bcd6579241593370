"""What `loadbench run` / `loadbench sweep` ask for, and what a run gives back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadbench.errors import ExitCode
from loadbench.metrics.records import Summary


@dataclass(slots=True)
class RunRequest:
    target: str | None = None
    model: str | None = None
    profile_path: Path | None = None
    scenario_path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    arrival: dict[str, Any] | None = None  # replaces the profile's load plan (``loadbench replay``: a trace)
    api_key_env: str | None = None
    protocol: str = "openai"  # --protocol: the wire protocol of --target (a profile's targets name their own)
    region: str | None = None  # --region: a bedrock target's AWS region
    out_dir: Path = Path("results")
    name: str | None = None
    workers: int | None = None  # workers expected to take part (None: auto_workers)
    local_workers: int | None = None  # started here (None: = workers; 0 with --master)
    master_bind_host: str = "127.0.0.1"
    master_port: int | None = None
    strict: bool = False
    argv: list[str] = field(default_factory=list)
    quiet: bool = False
    mock_args: list[str] = field(default_factory=list)
    baseline: tuple[Path, ...] = ()  # run folders (or folders of runs) relative thresholds compare against
    calibrate: bool = True  # size synthetic prompts by the target's own token count first
    embedded: str = "mock"  # without --target: "mock" or "gateway" (two mocks behind the gateway)
    run_dir: Path | None = None  # explicit folder (sweep steps, targets); default results/<time>-<name>
    prometheus_port: int | None = None  # live metrics served by the master on 127.0.0.1


@dataclass(frozen=True, slots=True)
class RunResult:
    """One run's folder and exit code; a single target's run carries its ``Summary``, a run of several
    targets or a sweep the results of its parts (by target name, or by sweep step ``"<k>-<load>"``)."""

    run_dir: Path
    exit_code: ExitCode
    summary: Summary | None = None
    parts: Mapping[str, RunResult] = field(default_factory=dict)


def say(req: RunRequest, line: str) -> None:
    if not req.quiet:
        print(line, flush=True)
