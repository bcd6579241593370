"""pricing.yaml and the cost of one call.

    currency: USD
    source: https://example.com/pricing      # where the prices were read
    as_of: 2026-10-01                        # when; the report warns after STALE_AFTER_DAYS
    models:
      my-model: {input_per_mtok: 0.50, cached_input_per_mtok: 0.05, cache_write_per_mtok: 0.625,
                 output_per_mtok: 1.50, embedding_per_mtok: 0.02, source: ..., as_of: ...}

Token buckets are disjoint, taken from the server's ``usage``:
    uncached_in = prompt_tokens - cached_tokens - cache_write_tokens
    cost = (uncached_in·p_in + cached·p_cached + cache_write·p_write + completion·p_out) / 1e6
(reasoning tokens are inside completion_tokens, so they are billed as output.) A response served
from the gateway's cache costs no model tokens: an exact hit costs 0, a semantic hit the embedding
of its prompt (prompt_tokens·p_embedding / 1e6). The same call without the cache is priced as if
the model had answered it (the usage the cache replays), the counterfactual the scorecard shows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from loadbench.config.source import read_yaml
from loadbench.config.validation import StrictModel, validate
from loadbench.errors import ConfigError
from loadbench.protocol.usage import Usage  # the token counts have their home there; priced here

STALE_AFTER_DAYS = 90
MTOK = 1_000_000


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


@dataclass(frozen=True, slots=True)
class Price:
    model: str
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float
    cache_write_per_mtok: float
    embedding_per_mtok: float
    source: str
    as_of: dt.date


@dataclass(frozen=True, slots=True)
class Pricing:
    path: str
    currency: str
    prices: dict[str, Price]

    def price(self, model: str, where: str) -> Price:
        if model not in self.prices:
            raise ConfigError(self.path, f"models.{model}", f"no price for {model!r} (needed by {where})",
                              f"add `{model}: {{input_per_mtok: ..., output_per_mtok: ...}}` under models:"
                              f" (priced: {', '.join(sorted(self.prices)) or 'none'})")
        return self.prices[model]


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


def stale_days(price: Price, today: dt.date) -> int | None:
    """Age in days when older than STALE_AFTER_DAYS, else None."""
    age = (today - price.as_of).days
    return age if age > STALE_AFTER_DAYS else None


def model_cost(usage: Usage, price: Price) -> float:
    uncached = max(0, usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens)
    return (uncached * price.input_per_mtok + usage.cached_tokens * price.cached_input_per_mtok
            + usage.cache_write_tokens * price.cache_write_per_mtok
            + usage.completion_tokens * price.output_per_mtok) / MTOK


def call_cost(usage: Usage, price: Price, cache: str | None) -> tuple[float, float]:
    """(cost paid, cost without the cache) of one call; ``cache`` is the gateway's
    ``x-loadbench-cache`` value (hit-exact | hit-semantic | miss | bypass) or None."""
    full = model_cost(usage, price)
    if cache == "hit-exact":
        return 0.0, full
    if cache == "hit-semantic":
        return usage.prompt_tokens * price.embedding_per_mtok / MTOK, full
    return full, full
