"""``loadbench run --pricing``: the run's cost per 1,000 requests and per hour (loadbench.eval.budget)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click
import orjson

from loadbench.config.pricing import load_pricing
from loadbench.errors import ConfigError
from loadbench.pricing import Price


def load_run_price(path: Path, name: str | None) -> tuple[Price, str]:
    if not name:
        raise ConfigError("--pricing", "--price", "no model to price", "give --price NAME (or --model)")
    pricing = load_pricing(path)
    return pricing.price(name, "--price"), pricing.currency


def write_run_cost(run_dir: Path, summary: dict[str, Any], price: Price, currency: str) -> None:
    from loadbench.eval.budget import run_budget

    budget = run_budget(summary, price, currency, dt.datetime.now(dt.UTC).date())
    if budget is None:
        click.echo("cost: the summary has no token or throughput figures to price", err=True)
        return
    (run_dir / "cost.json").write_bytes(orjson.dumps(budget.to_json(), option=orjson.OPT_INDENT_2))
    click.echo(budget.line())
