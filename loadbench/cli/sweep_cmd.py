"""``loadbench sweep``: find the capacity under an SLO."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Profile with `sweep:` (variable, start, step, max, hold_s) and `slo:` blocks.")
@click.option("--scenario", "scenario_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", metavar="URL", help="OpenAI base URL (default: the embedded mock).")
@click.option("--model")
@click.option("--api-key-env", metavar="VAR")
@click.option("--protocol", default="openai", show_default=True, metavar="NAME",
              help="Wire protocol of --target (and of the embedded mock): openai, openai-responses, azure, "
                   "anthropic, bedrock, gemini (a profile's targets name their own).")
@click.option("--region", metavar="REGION", help="AWS region of a bedrock target (default: AWS_REGION).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True)
@click.option("--name")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local Locust workers per step (default: one per core, capped by the step's load).")
@click.option("--mock-arg", "mock_args", multiple=True, metavar="ARG",
              help="Extra argument for the embedded mock, e.g. --mock-arg=--max-concurrency=50.")
def sweep(profile_path: Path, scenario_path: Path | None, target: str | None, model: str | None,
          api_key_env: str | None, protocol: str, region: str | None, out_dir: Path, name: str | None,
          workers: int | None,
          mock_args: tuple[str, ...]) -> int:
    """Step the load up, holding each step, until the SLO breaks; report per step and the capacity."""
    from loadbench.run import RunRequest, execute_sweep

    req = RunRequest(target=target, model=model, profile_path=profile_path, scenario_path=scenario_path,
                     api_key_env=api_key_env, out_dir=out_dir, name=name, workers=workers,
                     protocol=protocol, region=region,
                     argv=list(sys.argv), mock_args=list(mock_args))
    return int(execute_sweep(req).exit_code)
