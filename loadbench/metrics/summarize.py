"""The run summary as a pure function of what a run recorded: ``summarize(...) -> Summary``.

No file access and no config import: ``loadbench.results.summary_io`` reads the folder and writes the
result; ``loadbench.report`` renders it. Latency figures come from the merged HDR histograms (exact
across workers and intervals); counts, tokens, throughput and stalls from the samples. Only requests
whose intended start falls in the measurement phase count in the headline figures; warm-up and
cool-down requests are reported as excluded. The open/closed decision, the measure window, offered
arrivals and the stages all come from the load plan recorded when the run started.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from hdrh.histogram import HdrHistogram

from loadbench.metrics import histogram as hg
from loadbench.metrics.client_delay import (
    beyond_promise,
    delay_reason,
    delay_terms,
    receive_delay_counts,
    send_delay_counts,
)
from loadbench.metrics.recorder import LOOP_LAG_TAG, METRICS, READ_DELAY_TAG, SCHEDULE_LAG_TAG
from loadbench.metrics.records import (
    STAGE_METRICS,
    Breakdown,
    FailureKind,
    Generator,
    LatencyStats,
    Load,
    Replay,
    Requests,
    SessionStats,
    SloResult,
    StageResult,
    Stalls,
    Summary,
    SummaryTarget,
    Throughput,
    Tokens,
    TurnResult,
    Window,
)
from loadbench.metrics.sample import Sample
from loadbench.metrics.slo import SloSpec, request_is_good
from loadbench.metrics.timeline import TimelineRow
from loadbench.units import ns_to_s, us_to_ms, us_to_s

_SAMPLE_FIELDS = {"ttft": "ttft_us", "ttft_answer": "ttft_answer_us", "tpot": "tpot_us", "e2e": "e2e_us",
                  "queue": "queue_us", "service_ttft": "service_ttft_us"}


@dataclass(frozen=True, slots=True)
class TracePlan:
    """What the replay fidelity needs of a trace plan."""

    name: str
    format: str
    speed: float
    sample: float
    scheduled: int


@dataclass(frozen=True, slots=True)
class PlanFacts:
    """What the summary needs of the load plan recorded in the manifest (built from
    ``loadbench.plan.load.LoadPlan`` by ``loadbench.results.summary_io``)."""

    mode: str  # "closed" | "open"
    total_s: float
    warmup_s: float
    cooldown_s: float
    stages: tuple[tuple[str, float, float], ...]  # (label, start_s, end_s) on the run clock
    offered_arrivals: Callable[[float, float], float]  # planned arrivals between two run-clock times
    trace: TracePlan | None = None  # a trace replay


class TimedHistogram(Protocol):
    """One interval of the histogram log: ``start_s`` on the run clock."""

    @property
    def tag(self) -> str: ...
    @property
    def start_s(self) -> float: ...
    @property
    def length_s(self) -> float: ...
    @property
    def hist(self) -> HdrHistogram: ...


@dataclass(frozen=True, slots=True)
class RoundWindow:
    """One round of a merged (interleaved) run: its load start, end and planned length."""

    start_unix_s: float
    end_unix_s: float | None
    planned_s: float | None


@dataclass(frozen=True, slots=True)
class RunWindow:
    start_unix_s: float  # when load started (t = 0 of the plan)
    end_unix_s: float | None  # when load stopped (None: unknown, taken from the timeline)
    rounds: tuple[RoundWindow, ...] = ()  # merged rounds: only their measured time counts


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the launching process and the master recorded about the run (manifest and status)."""

    run_id: str | None
    name: str | None
    target: SummaryTarget
    load: Load
    slo: SloSpec | None = None
    stall_ms: float | None = None  # None: the run did not count stalls
    interrupted: bool = False
    workers_lost: tuple[str, ...] = ()
    worker_cpu_s: Mapping[str, float] | None = None


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _hists_from_samples(samples: Iterable[Sample]) -> dict[str, HdrHistogram]:
    """Per-request latencies rebuilt from samples (no ITL: gaps are only in the histogram log)."""
    out: dict[str, HdrHistogram] = {}
    for s in samples:
        if s.outcome != "ok":
            continue
        for metric, key in _SAMPLE_FIELDS.items():
            v = getattr(s, key)
            if isinstance(v, int):
                if metric not in out:
                    out[metric] = hg.new_histogram()
                hg.record(out[metric], v)
    return out


def _stats(hists: Mapping[str, HdrHistogram], metrics: Iterable[str]) -> dict[str, LatencyStats]:
    return {m: LatencyStats.from_json(hg.stats_ms(hists.get(m))) for m in metrics}


def _requests(samples: Sequence[Sample], excluded: int) -> Requests:
    by_outcome = Counter(s.outcome for s in samples)
    ok = by_outcome.get("ok", 0)
    dropped = by_outcome.get("dropped", 0)
    # still in flight when the run was stopped: neither an answer nor a failure of the target
    unanswered = dropped + by_outcome.get("interrupted", 0)
    failed = len(samples) - ok - unanswered
    attempted = len(samples) - unanswered
    kinds = Counter((s.status, _failure_message(s)) for s in samples
                    if s.outcome not in ("ok", "dropped", "interrupted"))
    failures = tuple(FailureKind(status, message, count)
                     for (status, message), count in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
                     [:TOP_FAILURES])
    return Requests(total=len(samples), ok=ok, failed=failed, dropped=dropped, excluded=excluded,
                    by_outcome=dict(sorted(by_outcome.items())),
                    error_rate=round(failed / attempted, 6) if attempted else 0.0, failures=failures)


TOP_FAILURES = 5


def _failure_message(s: Sample) -> str:
    """The upstream's message without the "HTTP 429: " prefix the sample's error carries."""
    error = s.error or s.outcome
    prefix = f"HTTP {s.status}: "
    return error.removeprefix(prefix) if error.startswith(prefix) else error


def _stalls(ok: Sequence[Sample], limit_ms: float | None) -> Stalls | None:
    counted = [s for s in ok if s.stalls is not None]
    if limit_ms is None or not counted:
        return None
    return Stalls(limit_ms=limit_ms, stalls=sum(s.stalls or 0 for s in counted), streams=len(counted),
                  streams_stalled=sum(1 for s in counted if s.stalls),
                  output_tokens=sum(s.output_tokens or 0 for s in counted))


def _goodput(spec: SloSpec | None, ok: Sequence[Sample], measure_s: float) -> float | None:
    if spec is None:
        return None
    limits = spec.request_limits_ms()

    def ms(v: int | None) -> float | None:
        return us_to_ms(v) if isinstance(v, int) else None

    good = sum(1 for s in ok if request_is_good(limits, {"ttft_ms": ms(s.ttft_us), "itl_ms": ms(s.itl_max_us),
                                                          "tpot_ms": ms(s.tpot_us), "e2e_ms": ms(s.e2e_us)}))
    return round(good / measure_s, 4) if measure_s else None


def _judge(spec: SloSpec | None, metrics: Mapping[str, LatencyStats], requests: Requests,
           stalls: Stalls | None) -> SloResult | None:
    if spec is None:
        return None
    figures = {"error_rate": requests.error_rate,
               "stalls_per_1k_tokens": stalls.per_1k_tokens if stalls else None,
               "stalled_share": stalls.stalled_share if stalls else None}
    return spec.judge(lambda m: metrics.get(m, LatencyStats()), figures)


def _measure_s(plan: PlanFacts, window: RunWindow, end_unix_s: float) -> float:
    if window.rounds:  # merged rounds (interleaved targets): only the measured time counts
        return sum(_round_measure_s(r, plan) for r in window.rounds)
    # requests sent inside the window and drained after it count; the window itself does not grow
    measure_end = min(end_unix_s, window.start_unix_s + plan.total_s - plan.cooldown_s)
    return max(0.0, measure_end - (window.start_unix_s + plan.warmup_s))


def _round_measure_s(r: RoundWindow, plan: PlanFacts) -> float:
    end = r.end_unix_s if r.end_unix_s is not None else r.start_unix_s
    if r.planned_s:
        end = min(end, r.start_unix_s + r.planned_s - plan.cooldown_s)
    return max(0.0, end - (r.start_unix_s + plan.warmup_s))


def _breakdowns(hists: Mapping[str, HdrHistogram], ok: Sequence[Sample],
                stall_ms: float | None) -> dict[str, dict[str, Breakdown]]:
    metrics: dict[str, dict[str, dict[str, LatencyStats]]] = defaultdict(lambda: defaultdict(dict))
    for tag, hist in sorted(hists.items()):
        if ":" not in tag:
            continue
        metric, dim = tag.split(":", 1)
        dimension, _, value = dim.partition("=")
        metrics[dimension][value][metric] = LatencyStats.from_json(hg.stats_ms(hist))
    out: dict[str, dict[str, Breakdown]] = {}
    for dimension, values in metrics.items():
        groups: dict[str, list[Sample]] = defaultdict(list)
        for s in ok:
            groups[str(getattr(s, dimension, None))].append(s)
        out[dimension] = {v: Breakdown(len(groups.get(v, ())), m, _stalls(groups.get(v, []), stall_ms))
                          for v, m in values.items()}
    return out


def _stage_results(plan: PlanFacts, samples: Sequence[Sample], intervals: Sequence[TimedHistogram],
                   start_unix_s: float, end_unix_s: float, spec: SloSpec | None,
                   stall_ms: float | None) -> tuple[StageResult, ...]:
    """One result per stage of the plan (by each request's intended start; ITL by the interval
    holding the gap, an interval belonging to the stage its middle falls in). Plans of one stage
    get none: the headline is that stage."""
    spans = list(plan.stages)
    if len(spans) < 2:
        return ()

    def stage_of(t_s: float) -> int:
        for i, (_, s0, s1) in enumerate(spans):
            if s0 <= t_s < s1:
                return i
        return len(spans) - 1 if t_s >= spans[-1][2] else 0

    by_stage: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_stage[stage_of(ns_to_s(s.intended_unix_ns) - start_unix_s)].append(s)
    itl: dict[int, list[TimedHistogram]] = defaultdict(list)
    for iv in intervals:
        if iv.tag == "itl":
            itl[stage_of(iv.start_s + iv.length_s / 2)].append(iv)
    run_s = end_unix_s - start_unix_s
    out = []
    for i, (label, s0, s1) in enumerate(spans):
        group = by_stage.get(i, [])
        ok = [s for s in group if s.outcome == "ok"]
        hists = _hists_from_samples(ok)
        if itl.get(i):
            hists["itl"] = hg.merge(iv.hist for iv in itl[i])
        metrics = _stats(hists, STAGE_METRICS)
        requests = _requests(group, excluded=0)
        seconds = max(0.0, min(s1, run_s) - s0)
        out_tokens = sum(s.output_tokens or 0 for s in ok)
        stalls = _stalls(ok, stall_ms)
        phases = {s.phase for s in group}
        phase = phases.pop() if len(phases) == 1 else ("mixed" if phases else "")
        out.append(StageResult(
            label=label, start_s=round(s0, 3), end_s=round(s1, 3), phase=phase, requests=requests,
            throughput=Throughput(round(len(ok) / seconds, 4) if seconds else None,
                                  round(out_tokens / seconds, 3) if seconds else None,
                                  _goodput(spec, ok, seconds)),
            metrics=metrics, stalls=stalls, slo=_judge(spec, metrics, requests, stalls)))
    return tuple(out)


# A worker this busy in a quarter of the intervals reads responses late (docs/generator.md).
CPU_HOT_PERCENT = 90.0
# Past these the generator could not keep up at all (the 1,000-stream cell of docs/generator.md loses
# tens of ms): the run is not valid to judge. Below them, a client-delay bound above the accuracy
# promise is a caveat with its size (metrics.client_delay), judged not valid only with --strict.
LOOP_LAG_P99_MAX_MS = 15.0
SCHEDULE_LAG_P99_MAX_MS = 25.0


def _p99_ms(hist: HdrHistogram | None) -> float | None:
    return _percentile_ms(hist, 99.0)


def _percentile_ms(hist: HdrHistogram | None, percentile: float) -> float | None:
    if hist is None or not hist.get_total_count():
        return None
    return round(us_to_ms(hist.get_value_at_percentile(percentile)), 3)


@dataclass(frozen=True, slots=True)
class ReceiveClockStats:
    """How a run's chunks were timed: by kernel receive stamps or in user space (docs/generator.md)."""

    clock: str | None = None  # "kernel", "user", or None when no chunk was measured
    stamped_share: float | None = None
    shared_stamp_share: float | None = None
    read_delay_p50_ms: float | None = None
    read_delay_p99_ms: float | None = None
    user_ttft_p50_ms: float | None = None  # the same requests' TTFT as user space read it
    user_ttft_p99_ms: float | None = None


USER_SPACE_TIMES = ("no content chunk carried a kernel receive stamp (not Linux, or TLS connections): chunks were "
                    "timed in user space when a read returned, so TTFT and ITL include the client's own read "
                    "delay, bounded by the loop lag")


def receive_clock_stats(ok: Sequence[Sample], read_delay: HdrHistogram | None) -> ReceiveClockStats:
    chunks = sum(s.chunks for s in ok)
    if not chunks or all(s.stamped_chunks is None for s in ok):
        return ReceiveClockStats()  # nothing measured, or a folder written before receive stamps
    stamped = sum(s.stamped_chunks or 0 for s in ok)
    if not stamped:
        return ReceiveClockStats("user")
    shared = sum(s.shared_chunks or 0 for s in ok if s.stamped_chunks)
    user_ttft = sorted(s.ttft_user_us for s in ok if s.ttft_user_us is not None)
    return ReceiveClockStats("kernel", round(stamped / chunks, 4), round(shared / chunks, 4),
                             _percentile_ms(read_delay, 50.0), _p99_ms(read_delay),
                             _rank_ms(user_ttft, 0.5), _rank_ms(user_ttft, 0.99))


@dataclass(frozen=True, slots=True)
class SendClockStats:
    """How a run's requests were timed on the send side: from the kernel's stamp of their last byte
    (the share of requests that had one) and the client's own send delay before it (docs/generator.md)."""

    stamped_share: float | None = None  # None: no request measured
    delay_p50_ms: float | None = None
    delay_p99_ms: float | None = None


def send_clock_stats(ok: Sequence[Sample]) -> SendClockStats:
    if not ok:
        return SendClockStats()
    delays = sorted(s.send_delay_us for s in ok if s.send_delay_us is not None)
    return SendClockStats(round(len(delays) / len(ok), 4), _rank_ms(delays, 0.5), _rank_ms(delays, 0.99))


def generator_reasons(cpu: list[float], lag_p99: float | None, sched_p99: float | None) -> list[str]:
    """Was the load generator itself the bottleneck? Judged over the whole run (merged histograms),
    so one noisy interval does not condemn a run, while a sustained problem always shows."""
    reasons = []
    hot = [c for c in cpu if c >= CPU_HOT_PERCENT]
    if cpu and len(hot) >= max(2, len(cpu) // 4):
        reasons.append(f"a worker used >= {CPU_HOT_PERCENT:.0f}% of a core in {len(hot)} of {len(cpu)} "
                       f"intervals (max {max(cpu):.0f}%): add workers (--workers) or lower users per worker")
    if lag_p99 is not None and lag_p99 > LOOP_LAG_P99_MAX_MS:
        reasons.append(f"event-loop lag P99 was {lag_p99:.1f} ms (> {LOOP_LAG_P99_MAX_MS:.0f} ms): the worker "
                       "read responses late; add workers or give the generator an idle core")
    if sched_p99 is not None and sched_p99 > SCHEDULE_LAG_P99_MAX_MS:
        reasons.append(f"open-loop schedule lag P99 was {sched_p99:.1f} ms (> {SCHEDULE_LAG_P99_MAX_MS:.0f} ms): "
                       "arrivals left late; add workers")
    return reasons


def _token_warnings(ok: Sequence[Sample], token_source: str) -> list[str]:
    warnings = []
    if ok and token_source != "usage":
        warnings.append("the target sent no usage for some requests: output token counts are "
                        "estimated from content chunks (one token per chunk)")
    pairs = [(s.prompt_tokens_requested, s.prompt_tokens) for s in ok
             if isinstance(s.prompt_tokens_requested, int) and isinstance(s.prompt_tokens, int)]
    p_req = sum(p for p, _ in pairs)
    p_got = sum(g for _, g in pairs)
    if pairs and abs(p_got - p_req) > 0.05 * p_req:
        warnings.append(f"prompt tokens: requested mean {p_req / len(pairs):.1f}, the target counted "
                        f"{p_got / len(pairs):.1f} (more than 5% apart)")
    mismatch = sum(1 for s in ok if isinstance(s.output_tokens_requested, int)
                   and s.output_tokens != s.output_tokens_requested)
    if mismatch:
        warnings.append(f"{mismatch} of {len(ok)} requests returned a different number of output tokens "
                        "than requested (max_tokens)")
    return warnings


WORKERS_LOST = "worker(s) lost during the run"  # the warning's start; report.validity looks for it


def _rank_ms(sorted_us: Sequence[int], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of sorted microseconds, in ms (None when empty)."""
    if not sorted_us:
        return None
    return round(us_to_ms(sorted_us[min(len(sorted_us) - 1, math.ceil(q * len(sorted_us)) - 1)]), 3)


def _replay(trace: TracePlan, samples: Sequence[Sample]) -> Replay:
    lags = sorted(s.queue_us for s in samples if s.queue_us is not None)
    return Replay(trace=trace.name, format=trace.format, speed=trace.speed, sample=trace.sample,
                  scheduled=trace.scheduled, sent=len(lags), dropped=sum(s.outcome == "dropped" for s in samples),
                  send_lag_p50_ms=_rank_ms(lags, 0.50), send_lag_p99_ms=_rank_ms(lags, 0.99),
                  send_lag_max_ms=_rank_ms(lags, 1.0))


def _sessions(samples: Sequence[Sample]) -> SessionStats | None:
    """Per turn index and per session, for the sessions whose first turn is in the measure window."""
    by_session: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.session is not None and s.turn is not None:
            by_session[s.session].append(s)
    measured = {k: v for k, v in by_session.items() if min(v, key=lambda s: s.turn or 0).phase == "measure"}
    if not measured:
        return None
    by_turn: dict[int, list[Sample]] = defaultdict(list)
    done: list[int] = []
    durations: list[float] = []
    completed = 0
    for turns in measured.values():
        ok = [s for s in turns if s.outcome == "ok"]
        done.append(len(ok))
        planned = turns[0].session_turns
        completed += planned is not None and len(ok) == planned
        for s in turns:
            by_turn[s.turn or 0].append(s)
        if ok:
            start = min(s.intended_unix_ns for s in turns)
            end = max(s.intended_unix_ns + (s.e2e_us or 0) * 1000 for s in ok)
            durations.append((end - start) / 1e9)
    rows = []
    for turn in sorted(by_turn):
        ok = [s for s in by_turn[turn] if s.outcome == "ok"]
        ttft = sorted(s.ttft_us for s in ok if s.ttft_us is not None)
        itl = [s.itl_mean_us for s in ok if s.itl_mean_us is not None]
        cached = [s.cached_tokens for s in ok if s.cached_tokens is not None]
        rows.append(TurnResult(
            turn=turn, requests=len(by_turn[turn]), ok=len(ok), ttft_p50_ms=_rank_ms(ttft, 0.5),
            ttft_p99_ms=_rank_ms(ttft, 0.99), itl_mean_ms=round(us_to_ms(sum(itl) / len(itl)), 3) if itl else None,
            prompt_tokens_mean=_mean([s.prompt_tokens for s in ok if s.prompt_tokens is not None]),
            cached_tokens_mean=_mean(cached) if cached else None))
    return SessionStats(started=len(measured), completed=completed,
                        turns_completed_mean=round(sum(done) / len(done), 3),
                        duration_mean_s=round(sum(durations) / len(durations), 3) if durations else None,
                        turns=tuple(rows))


def summarize(*, samples: Sequence[Sample], intervals: Sequence[TimedHistogram], plan: PlanFacts,
              window: RunWindow, facts: RunFacts, timeline: Sequence[TimelineRow] = ()) -> Summary:
    """The summary of one run folder's records (see the module docstring)."""
    warnings: list[str] = []
    hists = hg.merge_by_tag(intervals)
    measured = [s for s in samples if s.phase == "measure"]
    ok = [s for s in measured if s.outcome == "ok"]
    if not hists and any(s.outcome == "ok" for s in samples):
        hists = _hists_from_samples(ok)
        warnings.append("histograms.hlog is missing or empty: latencies rebuilt from samples.jsonl "
                        "(no ITL)")
    requests = _requests(measured, excluded=len(samples) - len(measured))

    end_unix_s = window.end_unix_s
    if end_unix_s is None:
        end_unix_s = window.start_unix_s + (timeline[-1].t_end_s if timeline else 0.0)
    measure_s = _measure_s(plan, window, end_unix_s)

    out_tokens = [s.output_tokens for s in ok if isinstance(s.output_tokens, int)]
    prompt_tokens = [s.prompt_tokens for s in ok if isinstance(s.prompt_tokens, int)]
    sources = {s.tokens_source for s in ok}
    token_source = "usage" if sources <= {"usage"} else ("estimated" if sources == {"estimated"} else "mixed")
    warnings += _token_warnings(ok, token_source)

    metrics = _stats(hists, METRICS)
    if requests.total - requests.dropped and not ok:
        warnings.append("no request succeeded: check the target URL, model and key")
    elif requests.error_rate > 0:
        warnings.append(f"{requests.failed} of {requests.total - requests.dropped} measured requests failed "
                        f"({requests.error_rate:.1%})")
    if requests.failures:
        warnings.append("failures by status and message: " + "; ".join(
            f"{f.count} x {f.status or 'no answer'} {f.message}" for f in requests.failures))
    if requests.dropped:
        warnings.append(f"{requests.dropped} scheduled arrivals were never sent because max_in_flight requests "
                        "were outstanding (see each sample's error)")
    interrupted = requests.by_outcome.get("interrupted", 0)
    if interrupted:
        warnings.append(f"{interrupted} requests were still in flight when their user was stopped (the end of "
                        "the run after the drain, or a ramp-down's stop_timeout that ran out): recorded as "
                        "interrupted, neither timed nor counted as failed")
    backed_off = [s.backoff_us for s in measured if s.backoff_us]
    if backed_off:
        warnings.append(f"{len(backed_off)} answers (429/5xx) and refused connections were followed by a backoff "
                        f"of the user sending them, {us_to_s(sum(backed_off)):.1f} s in total (Retry-After or "
                        "exponential): throughput is lower than the load asked for")
    queue = hists.get("queue")
    if queue is not None and queue.get_total_count() and queue.get_value_at_percentile(50.0) > 50_000:
        warnings.append(
            f"client-side queue: half the requests waited over {us_to_ms(queue.get_value_at_percentile(50.0)):.0f} ms "
            "for a free user (max_in_flight) before being sent; ttft and e2e count that wait (coordinated "
            "omission corrected), service_ttft shows the server's own time")
    if facts.interrupted:
        warnings.append("the run was interrupted: the summary covers what was measured until then")
    if facts.workers_lost:
        warnings.append(f"{WORKERS_LOST}: {', '.join(facts.workers_lost)}")

    cpu = [t.cpu_percent_max for t in timeline if t.cpu_percent_max is not None]
    lag_p99, sched_p99 = _p99_ms(hists.get(LOOP_LAG_TAG)), _p99_ms(hists.get(SCHEDULE_LAG_TAG))
    reasons = generator_reasons(cpu, lag_p99, sched_p99)
    target_rps = achieved_rps = None
    if plan.mode == "open":
        offered = plan.offered_arrivals(plan.warmup_s, plan.warmup_s + measure_s)
        # sent (ok or failed) + dropped: every arrival the schedule produced; an arrival of a sessions run
        # starts a session, so its later turns are not arrivals (they would hide sessions never started)
        arrived = sum(1 for s in measured if s.turn is None or s.turn == 1)
        target_rps = round(offered / measure_s, 3) if measure_s and offered else None
        achieved_rps = round(arrived / measure_s, 3) if measure_s else None
        if offered and arrived < 0.95 * offered:
            reasons.append(f"open loop: {arrived} arrivals of {offered:.0f} scheduled in the window "
                           "(< 95%): the generator could not keep the schedule")
    cpu_s = round(sum(facts.worker_cpu_s.values()), 3) if facts.worker_cpu_s else None
    rx = receive_clock_stats(ok, hists.get(READ_DELAY_TAG))
    if rx.clock == "user":
        warnings.append(USER_SPACE_TIMES)
    sends = send_clock_stats(ok)
    # with kernel stamps the loop lag leaves the receive side, and with send stamps the send side; the
    # open loop's own lateness (schedule lag, and the send delay it carries into TTFT) stays
    reads_count = receive_delay_counts(rx.clock, rx.stamped_share, rx.shared_stamp_share)
    sends_count = send_delay_counts(sends.stamped_share)
    open_loop = plan.mode == "open"
    terms = delay_terms(lag_p99, sched_p99, reads_count=reads_count, sends_count=sends_count,
                        open_loop=open_loop, send_delay_p99_ms=sends.delay_p99_ms)
    delay_ms = terms.bound_ms if terms is not None else None
    generator = Generator(
        saturated=bool(reasons), reasons=tuple(reasons), cpu_max=max(cpu) if cpu else None,
        loop_lag_p99_ms=lag_p99, schedule_lag_p99_ms=sched_p99,
        client_delay_ms=delay_ms, beyond_promise=beyond_promise(delay_ms), cpu_s=cpu_s,
        cpu_ms_per_request=round(1000 * cpu_s / len(samples), 4) if cpu_s is not None and samples else None,
        target_rps=target_rps, achieved_rps=achieved_rps, receive_clock=rx.clock,
        stamped_share=rx.stamped_share, shared_stamp_share=rx.shared_stamp_share,
        read_delay_p50_ms=rx.read_delay_p50_ms, read_delay_p99_ms=rx.read_delay_p99_ms,
        user_ttft_p50_ms=rx.user_ttft_p50_ms, user_ttft_p99_ms=rx.user_ttft_p99_ms,
        send_stamped_share=sends.stamped_share, send_delay_p50_ms=sends.delay_p50_ms,
        send_delay_p99_ms=sends.delay_p99_ms)
    if generator.saturated:
        warnings.append("the load generator was saturated: " + "; ".join(generator.reasons))
    if terms is not None and delay_ms is not None and generator.beyond_promise:
        warnings.append(delay_reason(delay_ms, terms.loop_lag_p99_ms, terms.schedule_lag_p99_ms,
                                     terms.send_delay_p99_ms))

    stalls = _stalls(ok, facts.stall_ms)
    stages = _stage_results(plan, samples, intervals, window.start_unix_s, end_unix_s, facts.slo, facts.stall_ms)
    return Summary(
        run_id=facts.run_id, name=facts.name, target=facts.target, load=facts.load,
        window=Window(window.start_unix_s, end_unix_s, round(measure_s, 3)),
        requests=requests,
        throughput=Throughput(
            requests_per_s=round(len(ok) / measure_s, 4) if measure_s else None,
            output_tokens_per_s=round(sum(out_tokens) / measure_s, 3) if measure_s else None,
            goodput_rps=_goodput(facts.slo, ok, measure_s)),
        tokens=Tokens(source=token_source if ok else None, prompt_mean=_mean(prompt_tokens),
                      output_mean=_mean(out_tokens),
                      prompt_requested_mean=_mean([s.prompt_tokens_requested for s in ok
                                                   if isinstance(s.prompt_tokens_requested, int)]),
                      output_requested_mean=_mean([s.output_tokens_requested for s in ok
                                                   if isinstance(s.output_tokens_requested, int)]),
                      per_chunk_mean=_per_chunk(ok), cached_mean=_reported_mean(ok, "cached_tokens"),
                      cache_write_mean=_reported_mean(ok, "cache_write_tokens"),
                      reasoning_mean=_reported_mean(ok, "reasoning_tokens")),
        metrics=metrics, generator=generator, slo=_judge(facts.slo, metrics, requests, stalls),
        breakdowns=_breakdowns(hists, ok, facts.stall_ms), stages=stages, stalls=stalls, warnings=tuple(warnings),
        interrupted=facts.interrupted, replay=None if plan.trace is None else _replay(plan.trace, samples),
        sessions=_sessions(samples))


def _per_chunk(ok: list[Sample]) -> float | None:
    """Output tokens per content chunk over the streams whose tokens the server counted (usage)."""
    counted = [s for s in ok if s.tokens_source == "usage" and s.output_tokens and s.chunks > 1]
    chunks = sum(s.chunks for s in counted)
    return round(sum(s.output_tokens or 0 for s in counted) / chunks, 3) if chunks else None


def _reported_mean(ok: list[Sample], name: str) -> float | None:
    """The mean of a usage kind over the requests that reported usage; None when none reported it."""
    values = [getattr(s, name) for s in ok if getattr(s, name) is not None]
    return _mean(values) if values and any(values) else None
