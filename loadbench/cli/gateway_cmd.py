"""``loadbench gateway``: run the OpenAI-compatible router (see loadbench.gateway, docs/gateway.md)."""

from __future__ import annotations

import click


@click.command("gateway")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Gateway YAML (targets, virtual_models); see profiles/gateway/example.yaml.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to bind; 0 picks a free one (printed in the listening line).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Processes sharing the port via SO_REUSEPORT (each keeps its own health state).")
@click.option("--check", is_flag=True, default=False, help="Validate the config and exit.")
def gateway(config_path: str, host: str, port: int, workers: int, check: bool) -> int:
    """Route OpenAI-compatible traffic across targets with weights, priorities, latency and failover."""
    from loadbench.gateway.config import load_config

    spec = load_config(config_path)  # ConfigError -> exit 2 naming the field
    if check:
        click.echo(f"{config_path}: ok ({len(spec.targets)} targets, {len(spec.routes)} virtual models)")
        return 0
    from loadbench.gateway.server import serve

    serve(spec, config_path, host, port, workers)
    return 0
