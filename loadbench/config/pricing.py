"""pricing.yaml, read and validated into ``loadbench.pricing.Pricing`` (docs/eval.md).

    currency: USD
    source: https://example.com/pricing      # where the prices were read
    as_of: 2026-10-01                        # when; the report warns after STALE_AFTER_DAYS
    models:
      my-model: {input_per_mtok: 0.50, cached_input_per_mtok: 0.05, cache_write_per_mtok: 0.625,
                 output_per_mtok: 1.50, embedding_per_mtok: 0.02, source: ..., as_of: ...}

Cached and cache-write input cost as input when their rates are not given.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pydantic import Field

from loadbench.config.source import read_yaml
from loadbench.config.validation import StrictModel, validate
from loadbench.errors import ConfigError
from loadbench.pricing import Price, Pricing


class _ModelPrice(StrictModel):
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    cache_write_per_mtok: float | None = Field(default=None, ge=0)
    embedding_per_mtok: float = Field(default=0.0, ge=0)
    source: str | None = None
    as_of: dt.date | None = None


class _PricingFile(StrictModel):
    currency: str = "USD"
    source: str
    as_of: dt.date
    models: dict[str, _ModelPrice]


def parse_pricing(data: dict[str, Any], path: str) -> Pricing:
    # YAML gives dates as datetime.date already; strict mode would reject an ISO string.
    if isinstance(data.get("as_of"), str):
        data = {**data, "as_of": _date(data["as_of"], path, "as_of")}
    models = data.get("models")
    if isinstance(models, dict):
        fixed = {}
        for name, entry in models.items():
            if isinstance(entry, dict) and isinstance(entry.get("as_of"), str):
                entry = {**entry, "as_of": _date(entry["as_of"], path, f"models.{name}.as_of")}
            fixed[name] = entry
        data = {**data, "models": fixed}
    model = validate(_PricingFile, data, path)
    prices = {}
    for name, m in model.models.items():
        prices[name] = Price(
            model=name, input_per_mtok=m.input_per_mtok, output_per_mtok=m.output_per_mtok,
            cached_input_per_mtok=m.input_per_mtok if m.cached_input_per_mtok is None else m.cached_input_per_mtok,
            cache_write_per_mtok=m.input_per_mtok if m.cache_write_per_mtok is None else m.cache_write_per_mtok,
            embedding_per_mtok=m.embedding_per_mtok, source=m.source or model.source, as_of=m.as_of or model.as_of)
    return Pricing(path=path, currency=model.currency, prices=prices)


def _date(text: str, path: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(path, field, f"{text!r} is not a date", "write it as YYYY-MM-DD") from None


def load_pricing(path: Path) -> Pricing:
    return parse_pricing(read_yaml(path), str(path))
