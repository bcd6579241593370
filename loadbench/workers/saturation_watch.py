"""The master's over-saturation watch: it feeds ``metrics.saturation.Detector`` from the workers' reports
(each worker's requests in flight, summed, at each report; each finished request's TTFT at its intended
start) and says when the run should stop (the profile's ``stop_on_saturation``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from loadbench.metrics.saturation import Detector, SaturationCheck
from loadbench.plan.run import SaturationRule

CHECK_EVERY_S = 1.0


class SaturationWatch:
    def __init__(self, rule: SaturationRule, start_unix_ns: int, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.detector = Detector(rule)
        self._start_ns = start_unix_ns
        self._clock_ns = clock_ns
        self._in_flight: dict[str, int] = {}
        self.last: SaturationCheck | None = None

    def _t_s(self, unix_ns: int) -> float:
        return (unix_ns - self._start_ns) / 1e9

    def on_report(self, data: Any) -> None:
        """One worker's report (``messages.WorkerData``)."""
        if not isinstance(data, dict):
            return
        self._in_flight[str(data.get("worker"))] = int(data.get("in_flight") or 0)
        self.detector.add_in_flight(self._t_s(self._clock_ns()), sum(self._in_flight.values()))
        for raw in data.get("samples") or ():
            s = orjson.loads(raw)
            if s.get("ttft_us") is not None:
                self.detector.add_ttft(self._t_s(int(s["intended_unix_ns"])), s["ttft_us"] / 1e6)

    def reason(self) -> str | None:
        """Why the run should stop now, or None (tested at most once a second: a fit over the window
        costs a pass over its points)."""
        now_s = self._t_s(self._clock_ns())
        if self.last is not None and now_s - self.last.at_s < CHECK_EVERY_S:
            return None
        self.last = self.detector.check(now_s)
        return self.last.reason() if self.last.saturated else None
