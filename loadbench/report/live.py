"""The progress line printed while a run is going (one every few seconds, by the master)."""

from __future__ import annotations

from loadbench.report.tables import MISSING


def _ms(value_ms: float | None) -> str:
    return f"{MISSING:>8} ms" if value_ms is None else f"{value_ms:8.2f} ms"


def live_line(*, elapsed_s: float, finished_rps: float, ttft_p50_ms: float | None, ttft_p99_ms: float | None,
              ok: int, failed: int, dropped: int, users: int | None = None, target_rps: float | None = None,
              achieved_rps: float | None = None, arrivals: str = "req") -> str:
    """Closed loop shows the users; open loop the planned arrival rate against the achieved one (its
    users are only request slots), in ``arrivals`` a second (a sessions run's arrivals are sessions).
    A window without a finished request shows ``–``, never ``nan``."""
    if target_rps is not None or achieved_rps is not None:
        target = MISSING if target_rps is None else f"{target_rps:.1f}"
        achieved = MISSING if achieved_rps is None else f"{achieved_rps:.1f}"
        load = f"target {target:>7} {arrivals}/s  achieved {achieved:>7} {arrivals}/s"
    else:
        load = f"users {MISSING if users is None else users:>5}"
    return (f"[{elapsed_s:6.1f}s] {load}  finished {finished_rps:8.1f} req/s  ttft p50 {_ms(ttft_p50_ms)}  "
            f"p99 {_ms(ttft_p99_ms)}  ok {ok}  errors {failed}" + (f"  dropped {dropped}" if dropped else ""))
