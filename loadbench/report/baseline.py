"""A baseline made of one or more runs of the same settings.

With several runs the baseline value of a figure is the mean over the runs, and the spread between
them enters the noise: a new run differs from the baseline mean by its own run-to-run shift as well
as by sampling noise. With k runs whose figure has sample standard deviation ``s``:

    between-run standard error of one run    = s * t(k-1)/z            (t_factor: s from k runs is uncertain)
    between-run standard error of the mean   = s * t(k-1)/z / sqrt(k)

and each side's standard error is the larger of its within-run estimate (``significance``) and its
between-run one. One baseline run cannot show the shift between runs: differences are then only
"beyond within-run noise", and reports say that between-run noise is unknown.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadbench.errors import InputError
from loadbench.report.runfolder import RunFolder, load_run
from loadbench.report.significance import Noise, folder_noise, t_factor
from loadbench.report.stats import Figure
from loadbench.results import run_dir as rd


def expand_baselines(paths: Iterable[Path]) -> list[Path]:
    """Run folders named directly, or every run folder directly inside a folder of runs."""
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if (path / rd.SUMMARY).is_file() or not path.is_dir():
            out.append(path)
            continue
        runs = sorted(p for p in path.iterdir() if (p / rd.SUMMARY).is_file())
        if not runs:
            raise InputError(f"baseline {path}: no summary.json in it or in any folder directly inside it "
                             "(pass a run folder or a folder of run folders)")
        out += runs
    return out


@dataclass(frozen=True, slots=True)
class Baseline:
    runs: tuple[RunFolder, ...]

    @classmethod
    def load(cls, paths: Sequence[Path]) -> Baseline:
        return cls(tuple(load_run(p) for p in paths))

    @property
    def first(self) -> RunFolder:
        return self.runs[0]

    @property
    def between_known(self) -> bool:
        return len(self.runs) >= 2

    @property
    def label(self) -> str:
        if len(self.runs) == 1:
            return f"`{self.first.name}` ({self.first.summary.run_id or '?'})"
        return f"{len(self.runs)} runs (" + ", ".join(f"`{r.name}`" for r in self.runs) + ")"

    def value(self, fig: Figure) -> float | None:
        """The mean of the figure over the runs (None when a run has no value)."""
        values = [fig.lookup(r.summary) for r in self.runs]
        if any(v is None for v in values):
            return None
        return statistics.fmean(v for v in values if v is not None)

    def between_se(self, fig: Figure) -> float | None:
        """Between-run standard error of one run's figure (None with fewer than two runs)."""
        values = [fig.lookup(r.summary) for r in self.runs]
        known = [v for v in values if v is not None]
        if len(known) < 2 or len(known) != len(values):
            return None
        return statistics.stdev(known) * t_factor(len(known))

    def noise(self, figures: Sequence[Figure], run_noise: Noise, *, seed: int) -> tuple[Noise, Noise]:
        """(baseline noise, run noise), each the larger of within-run and between-run errors."""
        per_run = [folder_noise(r, figures, seed=seed) for r in self.runs]
        k = len(self.runs)
        base = Noise(method=per_run[0].method)
        run = Noise(se=dict(run_noise.se), method=run_noise.method)
        for fig in figures:
            within = [n.get(fig.key) for n in per_run]
            if any(w is None for w in within):
                within_mean = None
            else:
                within_mean = math.sqrt(sum(w * w for w in within if w is not None)) / k
            between = self.between_se(fig)
            if between is not None:
                run.se[fig.key] = max(run.se.get(fig.key, 0.0), between)
                within_mean = max(within_mean or 0.0, between / math.sqrt(k))
            if within_mean is not None:
                base.se[fig.key] = within_mean
        if self.between_known:
            note = (f"; the spread between the {k} baseline runs (sample sd x t({k - 1})/z) is included "
                    "as run-to-run noise")
            base.method += note
            run.method += note
        return base, run
