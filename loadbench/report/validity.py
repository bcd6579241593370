"""Is a run fit to be judged at all? (Exit code 3 when not.)

A latency figure from a handful of requests, from a load generator that could not keep up, or from a
run where most requests failed says nothing about the target; gating CI on it would be noise.
"""

from __future__ import annotations

from typing import Any

DEFAULT_MIN_SAMPLES = 30
DEFAULT_ERROR_CEILING = 0.2


def check_valid(summary: dict[str, Any], *, min_samples: int = DEFAULT_MIN_SAMPLES,
                error_ceiling: float = DEFAULT_ERROR_CEILING) -> list[str]:
    """Reasons the run is not valid to judge (empty list = valid)."""
    reasons: list[str] = []
    ttft = (summary.get("metrics") or {}).get("ttft_ms") or {}
    count = int(ttft.get("count") or 0)
    if count < min_samples:
        reasons.append(f"too few samples: {count} successful requests in the measure window "
                       f"(need at least {min_samples}; run longer or with more users)")
    generator = summary.get("generator") or {}
    if generator.get("saturated"):
        why = "; ".join(str(r) for r in generator.get("reasons") or []) or "no reason given"
        reasons.append(f"load generator saturated ({why}): latencies include client-side delay")
    requests = summary.get("requests") or {}
    rate = requests.get("error_rate")
    if rate is not None and float(rate) > error_ceiling:
        reasons.append(f"error rate {float(rate) * 100:.1f}% is above the ceiling "
                       f"of {error_ceiling * 100:g}%")
    return reasons
