"""``loadbench replay``: send a trace's requests on its own timestamps (a profile's ``arrival: {trace: ...}``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from loadbench.config.trace import FORMATS


@click.command()
@click.argument("trace", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="mooncake (JSONL), azure (CSV) or gateway (loadbench's request log); auto: by the extension.")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True, max=10_000), default=1.0, show_default=True,
              help="Replay this many times faster (2: the trace's traffic at twice its rate).")
@click.option("--sample", type=click.FloatRange(min=0, min_open=True, max=1), default=1.0, show_default=True,
              help="Keep each request with this probability (seeded by --sample-seed).")
@click.option("--sample-seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--block-tokens", type=click.IntRange(min=1), default=512, show_default=True,
              help="Tokens per hash_ids block of a Mooncake trace.")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Profile for everything but the arrivals (timeouts, max_in_flight, late, slo, ...).")
@click.option("--scenario", "scenario_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Scenario: API, system prompt, sampling (the trace decides the lengths).")
@click.option("--target", metavar="URL", help="OpenAI base URL (default: the embedded mock).")
@click.option("--model", help="Model to request (a gateway log's requests keep their virtual model).")
@click.option("--api-key-env", metavar="VAR")
@click.option("--max-requests", type=click.IntRange(min=1), help="Replay only the first N sends.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0, min_open=True),
              help="Cut the replay after this many seconds.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True)
@click.option("--name")
@click.option("--workers", type=click.IntRange(min=1), default=None)
@click.option("--calibrate/--no-calibrate", default=True, show_default=True,
              help="Size prompts by the target's own token count first.")
@click.option("--mock-arg", "mock_args", multiple=True, metavar="ARG",
              help="Extra argument for the embedded mock, e.g. --mock-arg=--prefix-cache-blocks=4096.")
@click.option("--strict", is_flag=True, help="Exit 3 when the run is not valid to judge.")
def replay(trace: Path, fmt: str, speed: float, sample: float, sample_seed: int, block_tokens: int,
           profile_path: Path | None, scenario_path: Path | None, target: str | None, model: str | None,
           api_key_env: str | None, max_requests: int | None, duration_s: float | None, out_dir: Path,
           name: str | None, workers: int | None, calibrate: bool, mock_args: tuple[str, ...], strict: bool) -> int:
    """Replay a timestamped trace (docs/replay.md): a file, or the name of the environment variable holding
    a PostgreSQL request log's URL (e.g. LOADBENCH_LOG_DSN; never the URL itself)."""
    from loadbench.errors import ExitCode
    from loadbench.run import RunRequest, execute

    arrival = {"trace": str(trace), "format": fmt, "speed": speed, "sample": sample, "sample_seed": sample_seed,
               "block_tokens": block_tokens}
    req = RunRequest(target=target, model=model, profile_path=profile_path, scenario_path=scenario_path,
                     overrides={"max_requests": max_requests, "duration_s": duration_s}, arrival=arrival,
                     api_key_env=api_key_env, out_dir=out_dir, name=name or f"replay-{trace.stem}", workers=workers,
                     strict=strict, calibrate=calibrate, argv=list(sys.argv), mock_args=list(mock_args))
    result = execute(req)
    return int(result.exit_code) if result.exit_code != ExitCode.OK else 0
