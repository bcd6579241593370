"""Is a difference between two runs bigger than the noise the data can show?

Each run gets a **standard error** per figure (``Noise.se[key]``, in the figure's unit), estimated two
ways, taking the larger (so noise is never under-stated):

1. *Order statistics from the summary alone* (``summary_noise``): the rank of the p-th percentile of n
   samples has a binomial spread sqrt(n p (1-p)); the percentiles one rank-spread either side are read
   off the summary's own percentile curve (interpolated), and half their distance is the standard
   error (``folder_noise`` reads the percentiles off the run's exact HDR distribution instead of
   interpolating). Means use stdev/sqrt(n); error_rate sqrt(r (1-r) / n); throughput a Poisson sqrt(N)/T.
2. *Interval bootstrap over the hlog* (``folder_noise``): the run's measure intervals are resampled with
   replacement (seeded RNG, ``replicates`` times), their histograms merged losslessly, and the figure
   recomputed; the spread of the replicates is the standard error, widened by the Student-t factor
   t(k-1)/z for k intervals (a spread seen in 6 intervals is itself uncertain). Resampling whole intervals keeps
   the correlation inside an interval and lets drift between intervals show up as noise, which a
   per-request bootstrap would hide. Throughput and error rate use the spread of the per-interval
   values in timeline.jsonl (batch means). Needs at least ``MIN_INTERVALS`` intervals.

A percentile p is only judged when at least ``MIN_TAIL_SAMPLES`` samples lie beyond it in both runs
(n * (1 - p) >= 5: P90 needs 50 samples, P99 500, P99.9 5000); below that the figure is little more
than the largest few samples, its noise is unbounded and no difference in it is called significant.

A difference ``d = run - baseline`` is **significant** when ``|d| > z * sqrt(se_run² + se_base²)`` and
``|d| > min_effect * |baseline|`` (default z = 3, min_effect = 1%: below that, differences between two
runs on one machine are routine and the HDR resolution is 0.1%).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from loadbench.metrics.records import LATENCY_METRICS, LatencyStats, Summary
from loadbench.report.distribution import bucket_values_us, percentile_matrix_us, percentiles_us
from loadbench.report.stats import PERCENTILE_STATS, RUN_FIGURES, Figure

if TYPE_CHECKING:
    from loadbench.report.runfolder import RunFolder

DEFAULT_Z = 3.0
DEFAULT_MIN_EFFECT = 0.01
MIN_INTERVALS = 4
MIN_TAIL_SAMPLES = 5
# two-sided 99.73% Student-t quantiles (the z = 3 level) by degrees of freedom; beyond 30 use 3.0
_T_9973 = {1: 235.8, 2: 19.21, 3: 9.22, 4: 6.62, 5: 5.51, 6: 4.90, 7: 4.53, 8: 4.28, 9: 4.09, 10: 3.96,
           12: 3.76, 15: 3.59, 20: 3.42, 30: 3.27}


def t_factor(intervals: int) -> float:
    """How much wider a standard error estimated from ``intervals`` batches must be taken."""
    df = intervals - 1
    if df <= 0:
        return math.inf
    known = [d for d in sorted(_T_9973) if d <= df]
    return (_T_9973[known[-1]] if df <= 30 else 3.0) / 3.0
_KNOWN_POINTS = ("min", *PERCENTILE_STATS, "max")


@dataclass(slots=True)
class Noise:
    se: dict[str, float] = field(default_factory=dict)
    method: str = ""

    def get(self, key: str) -> float | None:
        return self.se.get(key)


@dataclass(frozen=True, slots=True)
class Significance:
    significant: bool
    noise: float  # the |difference| needed to call it significant, in the figure's unit
    why: str


def _percentile_curve(stats: LatencyStats) -> tuple[list[float], list[float]] | None:
    ps: list[float] = []
    vs: list[float] = []
    for name in _KNOWN_POINTS:
        v = stats.stat(name)
        if v is None:
            continue
        p = 0.0 if name == "min" else 100.0 if name == "max" else PERCENTILE_STATS[name]
        ps.append(p)
        vs.append(float(v))
    return (ps, vs) if len(ps) >= 2 else None


def _order_stat_se(stats: LatencyStats, stat: str) -> float | None:
    n = stats.count
    if n == 0:
        return None
    if stat == "mean":
        return float(stats.stdev or 0.0) / math.sqrt(n)
    if stat == "stdev":
        return float(stats.stdev or 0.0) / math.sqrt(max(1, 2 * (n - 1)))
    curve = _percentile_curve(stats)
    if curve is None:
        return None
    ps, vs = curve
    if stat in ("min", "max"):
        # an extreme has no useful rank interval; its neighbour percentile bounds how far it moves
        near = stats.p99_9 if stat == "max" else stats.p50
        v = stats.stat(stat)
        return abs(v - near) if v is not None and near is not None else None
    p = PERCENTILE_STATS[stat] / 100.0
    if n * (1 - p) < MIN_TAIL_SAMPLES - 1e-9:
        return math.inf
    half = math.sqrt(p * (1 - p) / n) * 100.0
    q = PERCENTILE_STATS[stat]
    lo = float(np.interp(max(0.0, q - half), ps, vs))
    hi = float(np.interp(min(100.0, q + half), ps, vs))
    return (hi - lo) / 2.0


def summary_noise(summary: Summary, figures: Iterable[Figure] | None = None) -> Noise:
    """Standard errors from the summary alone (order statistics / binomial / Poisson)."""
    noise = Noise(method="order statistics of the summary percentiles")
    for fig in figures if figures is not None else all_figures(summary):
        se = _figure_order_stat_se(summary, fig)
        if se is not None:
            noise.se[fig.key] = se
    return noise


def _figure_order_stat_se(summary: Summary, fig: Figure) -> float | None:
    if fig.is_latency:
        assert fig.stat is not None
        stats = fig.stats(summary)
        if fig.metric == "itl" and stats.count:
            # The gaps of one stream are not independent draws (a stream that lands on a slow path is
            # slow for all its gaps): the effective sample size is the number of streams, not of gaps.
            # Counting gaps made 12% ITL P90 swings between identical runs look significant.
            ok = summary.requests.ok
            if ok:
                stats = replace(stats, count=min(stats.count, ok))
        return _order_stat_se(stats, fig.stat)
    n = summary.requests.total
    if n == 0:
        return None
    if fig.metric == "error_rate":
        rate = max(summary.requests.error_rate, 1.0 / n)
        return math.sqrt(rate * (1 - rate) / n)
    stalls = summary.stalls
    if fig.metric.startswith("stalls."):
        if stalls is None or not stalls.streams or not stalls.output_tokens:
            return None
        if fig.metric == "stalls.stalled_share":  # binomial over streams
            share = max(stalls.stalled_share or 0.0, 1.0 / stalls.streams)
            return math.sqrt(share * (1 - share) / stalls.streams)
        return 1000.0 * math.sqrt(max(stalls.stalls, 1)) / stalls.output_tokens  # Poisson count of stalls
    value = fig.lookup(summary)
    if value is None or summary.window.measure_s <= 0:
        return None
    # Poisson: counts N over T have sd sqrt(N); scale to the figure (tokens/s scale with requests/s)
    ok = max(1, summary.requests.ok)
    return value / math.sqrt(ok)


def all_figures(summary: Summary) -> list[Figure]:
    figs = [Figure(m, s) for m in LATENCY_METRICS for s in ("mean", *PERCENTILE_STATS)]
    for dim, values in summary.breakdowns.items():
        for val in values:
            figs += [Figure(m, s, (dim, val)) for m in LATENCY_METRICS for s in ("mean", *PERCENTILE_STATS)]
    figs += [Figure(name) for name in RUN_FIGURES]
    return figs


def folder_noise(run: RunFolder, figures: Iterable[Figure] | None = None, *, seed: int = 0,
                 replicates: int = 200) -> Noise:
    """Standard errors from the run's data: the larger of the interval bootstrap and order statistics."""
    figs = list(figures) if figures is not None else all_figures(run.summary)
    base = summary_noise(run.summary, figs)
    intervals = run.hlog.intervals
    if len(intervals) < MIN_INTERVALS:
        base.method += f" (only {len(intervals)} hlog intervals: too few to bootstrap)"
        return base
    rng = np.random.default_rng(seed)
    k = len(intervals)
    # the same resampled interval sets for every figure, so figures stay comparable
    weights = np.stack([np.bincount(rng.integers(0, k, size=k), minlength=k) for _ in range(replicates)])
    widen = t_factor(k)
    boot: dict[str, float] = {}
    matrices: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for fig in figs:
        if not fig.is_latency:
            se = _timeline_se(run, fig)
        else:
            tag = fig.hlog_tag()
            if tag not in matrices:
                matrices[tag] = _interval_matrix(run, tag)
            se = _bootstrap_se(matrices[tag], weights, fig.stat)
            rank = _rank_se(matrices[tag], fig.stat)
            if rank is not None:
                base.se[fig.key] = rank
        if se is not None:
            boot[fig.key] = se * widen
    out = Noise(method=f"larger of: interval bootstrap over {k} hlog intervals "
                       f"({replicates} replicates, seed {seed}), and {base.method}")
    for key in set(base.se) | set(boot):
        out.se[key] = max(base.se.get(key, 0.0), boot.get(key, 0.0))
    return out


def _interval_matrix(run: RunFolder, tag: str) -> tuple[np.ndarray, np.ndarray] | None:
    dists = run.hlog.per_interval(tag)
    if not any(d.total for d in dists):
        return None
    indices = np.unique(np.concatenate([d.indices for d in dists]))
    matrix = np.zeros((len(dists), len(indices)), dtype=np.int64)
    for row, d in enumerate(dists):
        matrix[row, np.searchsorted(indices, d.indices)] = d.counts
    return indices, matrix


def _rank_se(mat: tuple[np.ndarray, np.ndarray] | None, stat: str | None) -> float | None:
    """Order-statistic standard error of a percentile, read off the run's exact distribution."""
    if mat is None or stat not in PERCENTILE_STATS:
        return None
    indices, matrix = mat
    counts = matrix.sum(axis=0)
    n = int(counts.sum())
    q = PERCENTILE_STATS[stat]
    p = q / 100.0
    if n * (1 - p) < MIN_TAIL_SAMPLES - 1e-9:
        return math.inf
    half = math.sqrt(p * (1 - p) / n) * 100.0
    lo, hi = percentiles_us(indices, counts, [max(0.0, q - half), min(100.0, q + half)])
    if lo is None or hi is None:
        return None
    return (hi - lo) / 2.0 / 1000.0


def _bootstrap_se(mat: tuple[np.ndarray, np.ndarray] | None, weights: np.ndarray,
                  stat: str | None) -> float | None:
    if mat is None or stat is None:
        return None
    indices, matrix = mat
    counts = weights @ matrix  # replicates x buckets
    if stat == "mean":
        values = bucket_values_us(indices)
        totals = counts.sum(axis=1)
        reps = np.where(totals > 0, (counts @ values) / np.maximum(totals, 1), np.nan)
    elif stat in PERCENTILE_STATS:
        reps = percentile_matrix_us(indices, counts, PERCENTILE_STATS[stat])
    else:
        return None
    reps = reps[~np.isnan(reps)]
    if len(reps) < 2:
        return None
    return float(np.std(reps, ddof=1)) / 1000.0


def _timeline_se(run: RunFolder, fig: Figure) -> float | None:
    rows = [r for r in run.timeline if r.phase == "measure"]
    if len(rows) < MIN_INTERVALS:
        return None
    lengths = np.array([r.t_end_s - r.t_start_s for r in rows])
    if fig.metric == "error_rate":
        req = np.array([float(r.requests) for r in rows])
        failed = np.array([float(r.failed) for r in rows])
        per = np.where(req > 0, failed / np.maximum(req, 1), 0.0)
    elif fig.metric == "throughput.rps":
        per = np.array([float(r.ok) for r in rows]) / lengths
    elif fig.metric == "throughput.tokens_per_s":
        per = np.array([float(r.output_tokens) for r in rows]) / lengths
    else:
        return None
    return float(np.std(per, ddof=1) / math.sqrt(len(per)))


def decide(run_value: float, base_value: float, se_run: float | None, se_base: float | None, *,
           z: float = DEFAULT_Z, min_effect: float = DEFAULT_MIN_EFFECT) -> Significance:
    diff = run_value - base_value
    se = math.sqrt((se_run or 0.0) ** 2 + (se_base or 0.0) ** 2)
    floor = min_effect * abs(base_value)
    noise = max(z * se, floor)
    if se_run is None and se_base is None:
        return Significance(False, math.inf, "no noise estimate: cannot call it significant")
    if math.isinf(se):
        return Significance(False, math.inf, f"too few samples beyond this percentile (< {MIN_TAIL_SAMPLES})")
    if abs(diff) > noise:
        return Significance(True, noise, f"|Δ| {abs(diff):.4g} > noise {noise:.4g}")
    return Significance(False, noise, f"|Δ| {abs(diff):.4g} ≤ noise {noise:.4g}")
