"""Is a run fit to be judged at all? (Exit code 3 when not.)

A latency figure from a handful of requests, from a load generator that could not keep up, or from a
run where most requests failed says nothing about the target; gating CI on it would be noise.
"""

from __future__ import annotations

from loadbench.metrics.client_delay import TTFT_P99_PROMISE_MS
from loadbench.metrics.records import Summary
from loadbench.metrics.summarize import WORKERS_LOST

DEFAULT_MIN_SAMPLES = 30
DEFAULT_ERROR_CEILING = 0.2


def check_valid(summary: Summary, *, min_samples: int = DEFAULT_MIN_SAMPLES,
                error_ceiling: float = DEFAULT_ERROR_CEILING, strict: bool = False) -> list[str]:
    """Reasons the run is not valid to judge (empty list = valid). ``strict`` also refuses a run whose
    P99 figures may carry more client-side delay than the accuracy promise (docs/generator.md)."""
    reasons: list[str] = []
    count = summary.latency("ttft").count
    if count < min_samples:
        reasons.append(f"too few samples: {count} successful requests in the measure window "
                       f"(need at least {min_samples}; run longer or with more users)")
    if summary.generator.saturated:
        why = "; ".join(summary.generator.reasons) or "no reason given"
        reasons.append(f"load generator saturated ({why}): latencies include client-side delay")
    elif strict and summary.generator.beyond_promise:
        reasons.append(f"P99 figures may include up to {summary.generator.client_delay_ms:g} ms of client-side "
                       f"delay, beyond the {TTFT_P99_PROMISE_MS:g} ms accuracy promise (--strict)")
    lost = [w for w in summary.warnings if w.startswith(WORKERS_LOST)]
    if lost:
        reasons.append(f"{lost[0]}: the load was not what the plan asked for after that")
    rate = summary.requests.error_rate
    if rate > error_ceiling:
        reasons.append(f"error rate {rate * 100:.1f}% is above the ceiling "
                       f"of {error_ceiling * 100:g}%")
    return reasons
