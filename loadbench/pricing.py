"""Token usage, a model's price and the one cost formula. Pure: no file, no clock, no I/O.

Token buckets are disjoint, taken from the server's ``usage``:
    uncached_in = prompt_tokens - cached_tokens - cache_write_tokens
    cost = (uncached_in·p_in + cached·p_cached + cache_write·p_write + completion·p_out) / 1e6
(reasoning tokens are inside completion_tokens, so they are billed as output.) A response served
from the gateway's cache costs no model tokens: an exact hit costs 0, a semantic hit the embedding
of its prompt (prompt_tokens·p_embedding / 1e6). The same call without the cache is priced as if
the model had answered it (the usage the cache replays), the counterfactual the scorecard shows.

Every figure in loadbench that prices tokens goes through ``token_cost``: a scored call, a logged
request, a load test's budget line, a judge's spend and a cost route's list-price proxy. The
pricing file (pricing.yaml) is read and validated by ``loadbench.config.pricing``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from loadbench.errors import ConfigError
from loadbench.protocol.usage import Usage  # the token counts have their home there; priced here

STALE_AFTER_DAYS = 90
MTOK = 1_000_000  # prices are per million tokens


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

    @classmethod
    def of(cls, model: str, input_per_mtok: float, output_per_mtok: float, source: str = "",
           as_of: dt.date = dt.date.min) -> Price:
        """A price with only input and output rates: cached and cache-write input cost as input, no
        embedding (a judge's configured rates; the zero price of costs read from a request log)."""
        return cls(model, input_per_mtok, output_per_mtok, input_per_mtok, input_per_mtok, 0.0, source, as_of)


@dataclass(frozen=True, slots=True)
class Pricing:
    """The prices of one pricing file, by model name."""

    path: str
    currency: str
    prices: dict[str, Price]

    def price(self, model: str, where: str) -> Price:
        if model not in self.prices:
            raise ConfigError(self.path, f"models.{model}", f"no price for {model!r} (needed by {where})",
                              f"add `{model}: {{input_per_mtok: ..., output_per_mtok: ...}}` under models:"
                              f" (priced: {', '.join(sorted(self.prices)) or 'none'})")
        return self.prices[model]


def stale_days(price: Price, today: dt.date) -> int | None:
    """Age in days when older than STALE_AFTER_DAYS, else None."""
    age = (today - price.as_of).days
    return age if age > STALE_AFTER_DAYS else None


def token_cost(price: Price, prompt_tokens: float, completion_tokens: float, cached_tokens: float = 0,
               cache_write_tokens: float = 0) -> float:
    """The one cost formula. Token counts may be means (a load test's budget line), hence floats;
    ``prompt_tokens`` includes the cached and cache-write tokens, which are priced at their own rates."""
    uncached = max(0.0, prompt_tokens - cached_tokens - cache_write_tokens)
    return (uncached * price.input_per_mtok + cached_tokens * price.cached_input_per_mtok
            + cache_write_tokens * price.cache_write_per_mtok + completion_tokens * price.output_per_mtok) / MTOK


def model_cost(usage: Usage, price: Price) -> float:
    """What the model bills for one call's usage."""
    return token_cost(price, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
                      usage.cache_write_tokens)


def call_cost(usage: Usage, price: Price, cache: str | None) -> tuple[float, float]:
    """(cost paid, cost without the cache) of one call; ``cache`` is the gateway's
    ``x-loadbench-cache`` value (hit-exact | hit-semantic | miss | bypass) or None."""
    full = model_cost(usage, price)
    if cache == "hit-exact":
        return 0.0, full
    if cache == "hit-semantic":
        return usage.prompt_tokens * price.embedding_per_mtok / MTOK, full
    return full, full
