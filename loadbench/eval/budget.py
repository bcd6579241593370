"""A capacity planner's budget line for a load test: cost per 1,000 requests and per hour at the
measured throughput (``loadbench run --pricing``). Pure.

    cost per request  = (prompt_mean·p_in + output_mean·p_out) / 10⁶   (loadbench.pricing.token_cost)
    per 1,000         = 1,000 · cost per request
    per hour          = requests_per_s · 3,600 · cost per request
with prompt_mean and output_mean the summary's mean tokens per request (from ``usage``, or
estimated when the server sent none) and requests_per_s its measured throughput. Prompt caching is
not visible in a load-test summary, so every input token is priced as uncached (an upper bound).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from loadbench.pricing import Price, stale_days, token_cost


@dataclass(frozen=True, slots=True)
class RunBudget:
    model: str
    currency: str
    cost_per_request: float
    per_1000_requests: float
    per_hour: float
    requests_per_s: float
    prompt_mean: float
    output_mean: float
    tokens_estimated: bool
    price_source: str
    price_as_of: str
    stale_days: int | None

    def to_json(self) -> dict[str, Any]:
        return {"schema": "loadbench.run_cost/1", **{k: getattr(self, k) for k in self.__dataclass_fields__}}

    def line(self) -> str:
        warn = f" (prices {self.stale_days} days old)" if self.stale_days else ""
        est = ", tokens estimated" if self.tokens_estimated else ""
        return (f"cost at {self.requests_per_s:.2f} req/s with {self.model} prices: {self.per_1000_requests:.4f} "
                f"{self.currency} per 1,000 requests, {self.per_hour:.2f} {self.currency} per hour "
                f"({self.prompt_mean:.0f} in / {self.output_mean:.0f} out tokens per request{est}; "
                f"{self.price_source}, {self.price_as_of}){warn}")


def run_budget(summary: dict[str, Any], price: Price, currency: str, today: dt.date) -> RunBudget | None:
    """None when the summary has no token means or throughput (e.g. no successful request)."""
    tokens = summary.get("tokens") or {}
    throughput = summary.get("throughput") or {}
    raw = (tokens.get("prompt_mean"), tokens.get("output_mean"), throughput.get("requests_per_s"))
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw):
        return None
    prompt, output, rps = (float(x) for x in raw)  # type: ignore[arg-type]
    cached, written = (float(tokens.get(k) or 0.0) for k in ("cached_mean", "cache_write_mean"))
    per_request = token_cost(price, prompt, output, cached, written)  # cached input at its own rates
    return RunBudget(
        model=price.model, currency=currency, cost_per_request=per_request, per_1000_requests=1000 * per_request,
        per_hour=rps * 3600 * per_request, requests_per_s=rps, prompt_mean=prompt,
        output_mean=output, tokens_estimated=tokens.get("source") not in (None, "usage"),
        price_source=price.source, price_as_of=price.as_of.isoformat(), stale_days=stale_days(price, today))
