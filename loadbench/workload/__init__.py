"""Pure, seeded workload logic: lengths, prompts, the request stream, arrivals, load shapes, sweeps.

No I/O here: RNGs and clocks are passed in, so every function is reproducible and testable.
"""

from loadbench.workload.requests import RequestFactory, RequestSpec, calibrate

__all__ = ["RequestFactory", "RequestSpec", "calibrate"]
