"""The chunk rate a closed-loop run will ask of its workers, measured before the run.

A worker's cost is mostly per chunk read, so users alone do not size workers: 100 users of a model
streaming every 8 ms ask 12,500 chunks a second, 100 users at 50 ms only 2,000. One streamed probe
request (outside the run, like the prompt calibration) measures the target's inter-chunk gap; the
expected rate is users / ITL, an upper bound (a stream reads no chunks while it waits for its first).
"""

from __future__ import annotations

import itertools
import statistics
import time
import urllib.request
from typing import Any

from loadbench.config import Profile, Scenario
from loadbench.plan.run import TargetSpec
from loadbench.protocol.dialect import Dialect, LLMRequest
from loadbench.protocol.openai import OPENAI
from loadbench.protocol.registry import dialect
from loadbench.run.request import RunRequest, say
from loadbench.run.target import one_request, run_factory
from loadbench.units import ns_to_s

PROBE_TOKENS = 16  # enough gaps for a median, short enough to cost well under a second
READ_BYTES = 65536


def content_times_ns(resp: Any, wire: Dialect = OPENAI) -> list[int]:
    """perf_counter_ns of each content chunk of a streamed response (per read, as the workers do)."""
    decoder = wire.decoder()
    times: list[int] = []
    for _ in range(100_000):  # bounded: a probe never reads more than this many times
        data = resp.read1(READ_BYTES)
        now = time.perf_counter_ns()
        if not data:
            break
        times.extend(now for _ in decoder.feed(data).content)
    return times


def median_gap_s(times_ns: list[int]) -> float | None:
    """Median gap between content chunks; None when the stream showed no gaps (buffered or too short)."""
    gaps = [b - a for a, b in itertools.pairwise(times_ns) if b > a]
    if len(gaps) < 3:
        return None
    return ns_to_s(int(statistics.median(gaps)))


def probe_itl_s(target: TargetSpec, request: LLMRequest, timeout_s: float) -> float | None:
    """Send one streamed request of ``PROBE_TOKENS`` tokens and return the target's median ITL."""
    one = one_request(target, request, stream=True, max_tokens=PROBE_TOKENS)
    with urllib.request.urlopen(urllib.request.Request(one.url, data=one.body, method="POST", headers=one.headers),
                                timeout=timeout_s) as resp:
        return median_gap_s(content_times_ns(resp, dialect(target.protocol)))


def expected_chunks_per_s(users: float, itl_s: float | None) -> float | None:
    """Chunks a second that ``users`` concurrent streams ask at most (None: ITL unknown)."""
    if itl_s is None or itl_s <= 0:
        return None
    return users / itl_s


def measure_itl_s(req: RunRequest, profile: Profile, scenario: Scenario, target: TargetSpec,
                  prompt_scale: float) -> float | None:
    """The target's ITL for sizing workers; None (and a note) when it cannot be measured."""
    spec = run_factory(scenario, target, stream=True, seed=profile.seed + 7907, prompt_scale=prompt_scale).next()
    assert spec.request is not None
    try:
        itl_s = probe_itl_s(target, spec.request, min(profile.timeout_s, 60.0))
    except Exception as exc:  # an aid to sizing: the run itself reports every failure
        say(req, f"note: ITL probe skipped ({type(exc).__name__}: {exc}); workers sized by users only")
        return None
    if itl_s is None:
        say(req, "note: the probe stream showed no gaps between chunks; workers sized by users only")
    return itl_s
