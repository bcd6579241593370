"""The gateway's event-loop delay as its ``/metrics`` show it (``loadbench.gateway.looplag``, on when the
gateway runs with ``LOADBENCH_GATEWAY_LOOP_DELAY=1``): read the histogram, and the figures of the waits
recorded between two readings. Shared by the gateway benches."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from loadbench.gateway import looplag


async def loop_delay_counts(session: aiohttp.ClientSession, url: str) -> dict[float, int] | None:
    """The gateway's loop-delay histogram: cumulative count by upper bound (s); None without the probe."""
    async with session.get(url + "/metrics") as r:
        text = await r.text()
    for family in text_string_to_metric_families(text):
        if family.name == looplag.METRIC:
            return {float(s.labels["le"]): int(s.value) for s in family.samples if s.name.endswith("_bucket")}
    return None


def loop_delay_figures(before: dict[float, int], after: dict[float, int]) -> dict[str, float | int | None]:
    """P50 and P99 (ms, the upper bound of the bucket each falls in) and the share over 1 ms of the
    waits recorded between two readings of the histogram."""
    bounds = sorted(after)
    cum = [after[b] - before.get(b, 0) for b in bounds]
    total = cum[-1] if cum else 0

    def quantile_ms(q: float) -> float | None:
        if not total:
            return None
        bound = next(b for b, c in zip(bounds, cum, strict=True) if c >= q * total)
        return round(bound * 1000, 3)

    within_1ms = next((c for b, c in zip(bounds, cum, strict=True) if b >= 0.001), total)
    return {"loop_delay_samples": total, "loop_delay_p50_ms": quantile_ms(0.5), "loop_delay_p99_ms": quantile_ms(0.99),
            "loop_delay_over_1ms_share": round(1 - within_1ms / total, 4) if total else None}
