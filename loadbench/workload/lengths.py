"""Seeded token-length distributions: every draw is an int clipped to [clip_min, clip_max] (>= 1).

``normal`` and ``lognormal`` take the mean and stdev of the lengths themselves; for lognormal they
are converted to the parameters of the underlying normal (sigma^2 = ln(1 + (stdev/mean)^2),
mu = ln(mean) - sigma^2 / 2), so a config author never has to think in log space.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from loadbench.config.scenario import LengthDist

Sampler = Callable[[random.Random], int]


def make_sampler(dist: LengthDist) -> Sampler:
    """A function drawing one length from ``dist`` with the given RNG (parameters precomputed)."""
    lo = max(1, dist.clip_min)
    hi = dist.clip_max

    def clip(x: float) -> int:
        n = max(lo, round(x))
        return n if hi is None else min(hi, n)

    if dist.kind == "fixed":
        value = clip(float(dist.value or 1))
        return lambda rng: value
    if dist.kind == "uniform":
        a, b = int(dist.min or 1), int(dist.max or 1)
        return lambda rng: clip(rng.randint(a, b))
    mean = float(dist.mean or 1.0)
    stdev = float(dist.stdev or 0.0)
    if dist.kind == "normal":
        return lambda rng: clip(rng.gauss(mean, stdev))
    if dist.kind == "lognormal":
        sigma = math.sqrt(math.log1p((stdev / mean) ** 2))
        mu = math.log(mean) - sigma * sigma / 2
        return lambda rng: clip(rng.lognormvariate(mu, sigma))
    if dist.kind == "exponential":
        lambd = 1.0 / mean
        return lambda rng: clip(rng.expovariate(lambd))
    raise AssertionError(f"unhandled length kind {dist.kind!r}")  # the config Literal forbids this


def sample_length(dist: LengthDist, rng: random.Random) -> int:
    return make_sampler(dist)(rng)
