"""``loadbench compare BASELINE... RUN_DIR``: deltas, significance, CI gates (exit 0/1/2/3)."""

from __future__ import annotations

from pathlib import Path

import click

from loadbench.errors import ExitCode


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--fail-on", "fail_on", multiple=True, metavar="EXPR",
              help="Fail (exit 1) when EXPR holds, e.g. 'ttft.p95 > +10%', 'itl.p99 > 25ms', "
                   "'error_rate > 1%'. Repeatable. Relative (+/-%) gates fail only on significant changes.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where compare.md and compare.junit.xml go (default: RUN_DIR).")
@click.option("--z", type=click.FloatRange(min=0, min_open=True), default=3.0, show_default=True,
              help="Standard errors a difference must exceed to be significant.")
@click.option("--min-effect", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Percent of the baseline below which a difference is never significant.")
@click.option("--min-samples", type=click.IntRange(min=0), default=30, show_default=True,
              help="Fewer successful requests than this make a run not valid to judge (exit 3).")
@click.option("--error-ceiling", type=click.FloatRange(min=0, max=100), default=20.0, show_default=True,
              help="Error rate (percent) above which a run is not valid to judge (exit 3).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap RNG.")
@click.option("--strict", is_flag=True,
              help="Also refuse (exit 3) runs whose P99 figures may include more client-side delay than the "
                   "5 ms accuracy promise (without it they are compared with a warning).")
def compare(paths: tuple[Path, ...], fail_on: tuple[str, ...], out_dir: Path | None, z: float,
            min_effect: float, min_samples: int, error_ceiling: float, seed: int, strict: bool) -> int:
    """Compare RUN_DIR (the last path) against a baseline: one run folder, several, or a folder of runs
    (several runs put the spread between runs into the noise). Writes compare.md and compare.junit.xml."""
    from loadbench.cli.eval_compare import compare_scorecard_paths, is_scorecard_pair

    if is_scorecard_pair(paths):  # two `loadbench eval` folders: quality/cost/consistency deltas
        return compare_scorecard_paths(paths, fail_on, out_dir)
    from loadbench.errors import InputError
    from loadbench.report.compare import compare_runs, render_junit, render_markdown, render_text
    from loadbench.report.gates import parse_exprs

    exprs = parse_exprs(fail_on)  # parse first: a typo is exit 2 before any work
    if len(paths) < 2:
        raise InputError("compare: give a baseline and a run: loadbench compare BASELINE... RUN_DIR")
    *baselines, run_dir = paths
    result = compare_runs(baselines, run_dir, exprs, z=z, min_effect=min_effect / 100.0, seed=seed,
                          min_samples=min_samples, error_ceiling=error_ceiling / 100.0, strict=strict)
    out = out_dir or run_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(render_markdown(result), encoding="utf-8")
    (out / "compare.junit.xml").write_text(render_junit(result), encoding="utf-8")
    click.echo(render_text(result), nl=False)
    click.echo(f"wrote {out / 'compare.md'} and {out / 'compare.junit.xml'}")
    if not result.valid:
        return ExitCode.INVALID_RUN
    if not result.verdict.passed:
        for failure in result.verdict.failures:
            click.echo(f"FAILED: {failure.expr.text}: {failure.message}", err=True)
        return ExitCode.GATE_FAILED
    return ExitCode.OK
