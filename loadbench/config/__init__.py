"""Config edge: profiles (how much load) and scenarios (what each request looks like).

``load_profile`` / ``load_scenario`` read YAML, validate it with frozen pydantic models and raise
``ConfigError(path, field, problem, fix)`` on any invalid input. ``None`` gives the built-in default.
This package is the only place that reads the environment (``env_value``, ``api_key``,
``resolve_api_key``): keys and header values named by a variable are read here, never stored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from loadbench.config import credentials
from loadbench.config.dataset import DatasetRecord, read_dataset
from loadbench.config.profile import (
    AbortOn,
    Arrival,
    FromEnv,
    Peak,
    Profile,
    Slo,
    Stage,
    Sweep,
    TargetConfig,
    TargetOptions,
)
from loadbench.config.scenario import DatasetSpec, LengthDist, MixEntry, Sampling, Scenario
from loadbench.config.sessions import load_conversations
from loadbench.config.source import read_yaml
from loadbench.config.validation import validate
from loadbench.errors import ConfigError

__all__ = [
    "AbortOn",
    "Arrival",
    "DatasetRecord",
    "DatasetSpec",
    "FromEnv",
    "LengthDist",
    "MixEntry",
    "Peak",
    "Profile",
    "Sampling",
    "Scenario",
    "Slo",
    "Stage",
    "Sweep",
    "TargetConfig",
    "TargetOptions",
    "api_key",
    "credentials",
    "dataset_records",
    "env_value",
    "load_profile",
    "load_scenario",
    "profile_from_dict",
    "resolve_api_key",
    "scenario_from_dict",
]


def load_profile(path: str | Path | None) -> Profile:
    if path is None:
        return Profile()
    path = Path(path)
    return validate(Profile, _read_non_empty(path, "profile", "`users: 10` and `duration_s: 30`"), str(path))


def load_scenario(path: str | Path | None) -> Scenario:
    """Validate the scenario and read every dataset it names (paths relative to the scenario file)."""
    if path is None:
        return Scenario()
    path = Path(path)
    data = _read_non_empty(path, "scenario", "`prompt_tokens: 256` and `output_tokens: 128`")
    return scenario_from_dict(data, base_dir=path.parent, source=str(path))


def _read_non_empty(path: Path, kind: str, example: str) -> dict[str, Any]:
    """An empty file is refused: it would run the built-in default while looking like a choice."""
    data = read_yaml(path)
    if not data:
        raise ConfigError(str(path), "(file)", f"the {kind} file is empty",
                          f"write at least one key (e.g. {example}), or leave out --{kind} for the built-in "
                          "default")
    return data


def profile_from_dict(data: dict[str, Any], source: str = "run plan") -> Profile:
    """Rebuild a profile from ``Profile.model_dump(mode="json")`` (e.g. in a worker process)."""
    return validate(Profile, data, source)


def scenario_from_dict(
    data: dict[str, Any], base_dir: Path | None = None, source: str = "run plan"
) -> Scenario:
    """Rebuild a scenario from plain data (e.g. ``model_dump(mode="json")`` sent to a worker) and read
    its datasets again: the records are not part of the dump, their resolved paths are."""
    scenario = validate(Scenario, data, source)
    base = base_dir or Path.cwd()
    updates: dict[str, object] = {}
    if scenario.dataset is not None:
        updates["dataset"] = _load_dataset(scenario.dataset, base)
    if scenario.sessions is not None and scenario.sessions.dataset is not None:
        file = Path(scenario.sessions.dataset)
        file = file if file.is_absolute() else base / file
        load_conversations(str(file), replay=scenario.sessions.mode == "replay")  # checked before any request
        updates["sessions"] = scenario.sessions.model_copy(update={"dataset": str(file.resolve())})
    if scenario.mix is not None and any(m.dataset is not None for m in scenario.mix):
        updates["mix"] = [
            m if m.dataset is None else m.model_copy(update={"dataset": _load_dataset(m.dataset, base)})
            for m in scenario.mix
        ]
    return scenario.model_copy(update=updates) if updates else scenario


def _load_dataset(spec: DatasetSpec, base: Path) -> DatasetSpec:
    file = Path(spec.path)
    if not file.is_absolute():
        file = base / file
    resolved = spec.model_copy(update={"path": str(file)})
    resolved._records = read_dataset(file)
    return resolved


def dataset_records(spec: DatasetSpec) -> tuple[DatasetRecord, ...]:
    """The spec's records: those read by ``load_scenario``, or read now (and kept) for a spec rebuilt
    from a dump with ``Scenario.model_validate`` (its path is already resolved; a relative one is
    taken from the working directory). Errors name the file and line like ``load_scenario``."""
    if not spec._records:
        spec._records = read_dataset(Path(spec.path))
    return spec._records


def env_value(name: str) -> str | None:
    """The value of environment variable ``name`` (None when unset or empty)."""
    return os.environ.get(name) or None


def api_key(env_name: str | None, *, path: str = "command line", field: str = "--api-key-env") -> str | None:
    """The key in the named variable (None when no variable is named); ConfigError naming ``field``
    when it is named but unset, so a run never goes out silently without its key."""
    if env_name is None:
        return None
    key = env_value(env_name)
    if key is None:
        raise ConfigError(path, field, f"{env_name} is not set", f"export {env_name}=... before the run")
    return key


def resolve_headers(headers: dict[str, str | FromEnv], where: str) -> dict[str, str]:
    """Header values with each ``{env: NAME}`` read now; ConfigError naming the header when unset."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(value, FromEnv):
            resolved = env_value(value.env)
            if resolved is None:
                raise ConfigError("profile", f"{where}.headers.{name}", f"{value.env} is not set",
                                  f"export {value.env}=... before the run")
            value = resolved
        out[name] = value
    return out


def resolve_api_key(target: TargetConfig) -> str | None:
    """The key from the environment variable the target names; ConfigError when it is named but unset."""
    return api_key(target.api_key_env, path="environment", field=f"targets[{target.name}].api_key_env")
