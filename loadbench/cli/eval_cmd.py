"""``loadbench eval SUITE``: quality, cost per acceptable outcome, latency and consistency of
each target on one scorecard, with the suite's decision rule (docs/eval.md).

Everything is validated before the first request (exit 2 naming file, line, field and fix).
Exit: 0 ACCEPT (or no decision block and every regression case passed), 1 REJECT or a failed
regression case, 3 INCONCLUSIVE, 2 bad input.
"""

from __future__ import annotations

from pathlib import Path

import click

from loadbench.errors import ExitCode


@click.command("eval")
@click.argument("suite", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", "targets", multiple=True, metavar="NAME=URL",
              help="Point a suite target at this base URL (…/v1) instead of its url: or embedded mock.")
@click.option("--filter", "filter_", default="", metavar="KEY=VALUE,...",
              help="Select cases: kind=regression,tag=billing,id=t01 (all must match).")
@click.option("--sample", type=click.IntRange(1), default=None, help="Run a seeded random sample of N cases.")
@click.option("--seed", type=int, default=None, help="Seed for --sample and the per-repeat order (default: suite).")
@click.option("--failing-from", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Run only the cases not acceptable in every repeat of that evaluation folder.")
@click.option("--repeats", type=click.IntRange(1, 100), default=None, help="Override the suite's repeats.")
@click.option("--append", "append", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Add a session (another day's repeats) to this evaluation folder.")
@click.option("--latency-from", "latency_from", multiple=True, metavar="NAME=RUN_DIR",
              help="Take a target's latency column from a load-test run folder's summary.json.")
@click.option("--allow-code-execution", is_flag=True, default=False,
              help="Allow code_tests criteria to run generated Python (in a limited subprocess).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Where the evaluation folder is created.")
@click.option("--name", default=None, help="Name of the evaluation folder (default: the suite's name).")
@click.option("--from-log", "from_log", default=None, metavar="LOG",
              help="Score logged answers of a gateway request log (a file, a postgresql:// URL or a variable"
                   " holding one) instead of calling targets (with --pairs).")
@click.option("--pairs", is_flag=True, default=False,
              help="With --from-log: score the shadow pairs (primary vs shadow) with the suite's rubric and judge.")
def eval_(suite: Path, targets: tuple[str, ...], filter_: str, sample: int | None, seed: int | None,
          failing_from: Path | None, repeats: int | None, append: Path | None, latency_from: tuple[str, ...],
          allow_code_execution: bool, out_dir: Path, name: str | None, from_log: str | None, pairs: bool) -> int:
    """Evaluate targets on a suite: quality, cost, latency, consistency; decide against the incumbent."""
    if from_log is not None or pairs:
        if from_log is None or not pairs:
            raise click.UsageError("--from-log LOG and --pairs go together (score the log's shadow pairs)")
        from loadbench.eval.pairs import run_pairs

        return int(run_pairs(suite, from_log, out_dir, name))
    from loadbench.eval.workflow import EvalOptions, run_eval

    verdict = run_eval(EvalOptions(
        suite_path=suite, target_urls=targets, filter=filter_, sample=sample, seed=seed, failing_from=failing_from,
        repeats=repeats, append=append, latency_from=latency_from, allow_code_execution=allow_code_execution,
        out_dir=out_dir, name=name))
    return int(verdict) if isinstance(verdict, ExitCode) else verdict
