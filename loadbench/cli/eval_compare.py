"""``loadbench compare`` on two evaluation folders (or scorecard.json files): see loadbench.eval.compare."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
import orjson

from loadbench.errors import ExitCode, InputError


def scorecard_path(path: Path) -> Path | None:
    if path.is_file() and path.name == "scorecard.json":
        return path
    if path.is_dir() and (path / "scorecard.json").exists():
        return path / "scorecard.json"
    return None


def is_scorecard_pair(paths: Sequence[Path]) -> bool:
    return any(scorecard_path(p) is not None for p in paths)


def compare_scorecard_paths(paths: Sequence[Path], fail_on: Sequence[str], out_dir: Path | None) -> ExitCode:
    from loadbench.eval.compare import compare_scorecards, parse_gates, render
    from loadbench.eval.scorecard import Scorecard

    gates = parse_gates(fail_on)
    found = [scorecard_path(p) for p in paths]
    if len(paths) != 2 or None in found:
        raise InputError("compare: give two evaluation folders (or scorecard.json files): BASE RUN")
    base_p, run_p = found[0], found[1]
    assert base_p is not None and run_p is not None
    base = Scorecard.from_json(orjson.loads(base_p.read_bytes()), str(base_p))
    run = Scorecard.from_json(orjson.loads(run_p.read_bytes()), str(run_p))
    result = compare_scorecards(base, run, gates)
    text = render(result, str(base_p.parent), str(run_p.parent))
    out = out_dir or run_p.parent
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(text, encoding="utf-8")
    click.echo(text, nl=False)
    return ExitCode.GATE_FAILED if result.failures else ExitCode.OK
