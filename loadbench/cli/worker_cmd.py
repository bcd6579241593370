"""``loadbench worker``: a Locust worker that joins a master started with ``loadbench run --master``."""

from __future__ import annotations

import subprocess
import sys

import click


@click.command()
@click.option("--master-host", default="127.0.0.1", show_default=True, help="Host of the loadbench master.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=5557, show_default=True)
def worker(master_host: str, master_port: int) -> int:
    """Join a distributed run as one Locust worker process (runs until the master quits).

    The master sends the run plan (target, profile, scenario); an API key is read from the variable
    the plan names, in this machine's environment."""
    # A separate interpreter: Locust's gevent monkey-patching must not touch the CLI process.
    return subprocess.call([sys.executable, "-m", "loadbench.workers", "worker", "--master-host", master_host,
                            "--master-port", str(master_port)])
