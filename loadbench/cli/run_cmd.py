"""``loadbench run``: one load test, from config to results folder and verdict."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from loadbench.errors import ExitCode


@click.command()
@click.option("--target", metavar="URL", help="OpenAI base URL, e.g. http://127.0.0.1:8001/v1. "
              "Default: start the embedded mock upstream.")
@click.option("--embedded", type=click.Choice(["mock", "gateway"]), default=None,
              help="Without --target: what to start locally (default: mock). 'gateway' puts the loadbench gateway "
                   "in front of two mocks of different speed (80/20 weighted split).")
@click.option("--model", help="Model name to request (default: the profile's, else the target's first).")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Profile YAML: how much load (profiles/).")
@click.option("--scenario", "scenario_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Scenario YAML: what is sent (scenarios/).")
@click.option("--users", type=click.IntRange(min=1), help="Concurrent users (closed loop).")
@click.option("--ramp-up", "ramp_up_s", type=click.FloatRange(min=0), help="Seconds to spawn all users.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0, min_open=True),
              help="Run length in seconds (includes ramp-up).")
@click.option("--warmup", "warmup_s", type=click.FloatRange(min=0),
              help="Seconds at the start excluded from the summary (by each request's intended start).")
@click.option("--cooldown", "cooldown_s", type=click.FloatRange(min=0),
              help="Seconds at the end excluded from the summary.")
@click.option("--max-requests", type=click.IntRange(min=1), help="Stop after this many requests.")
@click.option("--stream/--no-stream", default=None, help="Stream responses (default: the profile's, true).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the request stream.")
@click.option("--api-key-env", metavar="VAR", help="Environment variable holding the target's API key.")
@click.option("--protocol", default="openai", show_default=True, metavar="NAME",
              help="Wire protocol of --target (and of the embedded mock): openai, openai-responses, azure, "
                   "anthropic, bedrock, gemini (a profile's targets name their own).")
@click.option("--region", metavar="REGION", help="AWS region of a bedrock target (default: AWS_REGION).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder that receives the run folder.")
@click.option("--name", help="Run name (part of the folder name).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local Locust worker processes (default: one per core, capped by what the load needs: "
                   "one per 250 users or 200 req/s at peak).")
@click.option("--master", "master_mode", is_flag=True,
              help="Multi-machine: run only the Locust master and wait for --expect-workers remote workers "
                   "(start them with `loadbench worker --master-host HOST`).")
@click.option("--expect-workers", type=click.IntRange(min=1), help="Workers to wait for with --master.")
@click.option("--master-bind-host", default="127.0.0.1", show_default=True,
              help="Address the master listens on (use 0.0.0.0 for remote workers).")
@click.option("--master-port", type=click.IntRange(1, 65535), help="Master port (default: 5557 with "
              "--master, a free port otherwise).")
@click.option("--calibrate/--no-calibrate", default=True, show_default=True,
              help="Size synthetic prompts by the target's own token count (a few max_tokens=1 requests first).")
@click.option("--baseline", type=click.Path(file_okay=False, path_type=Path), multiple=True,
              help="Run folder (or folder of runs) that the profile's relative thresholds (e.g. 'ttft.p95 > "
                   "+10%') compare against. Repeat for a baseline of several runs: their spread enters the noise.")
@click.option("--strict", is_flag=True, help="Exit 3 when the run is not valid to judge (e.g. the "
              "generator was saturated).")
@click.option("--pricing", "pricing_path", type=click.Path(dir_okay=False, path_type=Path),
              help="pricing.yaml: add cost per 1,000 requests and per hour at the measured throughput "
                   "(cost.json; docs/eval.md).")
@click.option("--price", "price_name", help="The pricing.yaml model to use (default: --model).")
@click.option("--web", is_flag=True, help="Start runs from Locust's web UI (with loadbench's form fields and live "
              "charts) instead of at once; each start writes its own run folder (docs/web.md).")
@click.option("--web-host", default="127.0.0.1", show_default=True, help="Address of the web UI (--web).")
@click.option("--web-port", type=click.IntRange(1, 65535), default=8089, show_default=True,
              help="Port of the web UI (--web).")
@click.option("--web-auth-env", metavar="VAR", help="Environment variable holding user:password: HTTP basic "
              "auth on the web UI (use it with --web-host other than 127.0.0.1).")
@click.option("--prometheus-port", type=click.IntRange(1, 65535), help="Serve live Prometheus metrics of the "
              "run on 127.0.0.1:PORT/metrics (docs/web.md).")
def run(target: str | None, embedded: str | None, model: str | None, profile_path: Path | None,
        scenario_path: Path | None,
        users: int | None, ramp_up_s: float | None, duration_s: float | None, warmup_s: float | None,
        cooldown_s: float | None, max_requests: int | None,
        stream: bool | None, seed: int | None, api_key_env: str | None, protocol: str, region: str | None,
        out_dir: Path, name: str | None,
        workers: int | None, master_mode: bool, expect_workers: int | None, master_bind_host: str,
        master_port: int | None, calibrate: bool, baseline: tuple[Path, ...], strict: bool,
        pricing_path: Path | None, price_name: str | None, web: bool, web_host: str, web_port: int,
        web_auth_env: str | None, prometheus_port: int | None) -> int:
    """Run a load test and write a results folder."""
    from loadbench.cli.run_pricing import load_run_price, write_run_cost
    from loadbench.run import RunRequest, execute

    if embedded is not None and target is not None:
        raise click.UsageError("--embedded starts a local target; it cannot be combined with --target "
                               "(drop one of them)")
    if web and master_mode:
        raise click.UsageError("--web runs its workers locally; it cannot be combined with --master")
    if web and pricing_path:
        raise click.UsageError("--pricing is for a headless run (its cost.json is written after the run); it "
                               "cannot be combined with --web")
    priced = load_run_price(pricing_path, price_name or model) if pricing_path else None  # exit 2 before load
    if prometheus_port is not None:
        from loadbench.run.web import require_free_port

        require_free_port("127.0.0.1", prometheus_port, "--prometheus-port")

    req = RunRequest(target=target, embedded=embedded or "mock", model=model, profile_path=profile_path,
                     scenario_path=scenario_path,
                     overrides={"users": users, "ramp_up_s": ramp_up_s, "duration_s": duration_s,
                                "max_requests": max_requests, "stream": stream, "seed": seed,
                                "warmup_s": warmup_s, "cooldown_s": cooldown_s},
                     api_key_env=api_key_env, out_dir=out_dir, name=name,
                     protocol=protocol, region=region,
                     workers=(expect_workers or workers or 1) if master_mode else workers,
                     local_workers=0 if master_mode else None, master_bind_host=master_bind_host,
                     master_port=master_port or (5557 if master_mode else None),
                     strict=strict, calibrate=calibrate, baseline=baseline, argv=list(sys.argv),
                     prometheus_port=prometheus_port)
    if web:
        from loadbench.run.web import WebOptions, run_web

        return int(run_web(req, WebOptions(host=web_host, port=web_port, auth_env=web_auth_env)))
    result = execute(req)
    if priced is not None:
        write_run_cost(result.run_dir, result.summary.to_json() if result.summary else {}, *priced)
    return int(result.exit_code) if result.exit_code != ExitCode.OK else 0
