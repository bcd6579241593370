"""Per-process state of a Locust worker: the plan, the request stream, the recorder and the outbox.

Samples and interval histograms recorded here leave the process through Locust's
``report_to_master`` event (every second) and a final ``messages.FINAL`` when the master stops
the run, so the master is the only writer of the results folder (works across machines too).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psutil

from loadbench.config import scenario_from_dict
from loadbench.config.credentials import target_auth, target_dialect
from loadbench.config.trace import Trace, load_trace
from loadbench.metrics import histogram as hg
from loadbench.metrics.recorder import IntervalRecorder
from loadbench.metrics.sample import Sample
from loadbench.metrics.timing import RequestTiming, count_stalls, derive, gaps_us, read_delays_us, shared_times
from loadbench.plan.load import Phase
from loadbench.plan.run import RunPlan
from loadbench.units import ms_to_us, ns_to_s, ns_to_us, s_to_ns, s_to_us
from loadbench.workers.messages import WorkerData
from loadbench.workers.stream import Measured
from loadbench.workload.requests import RequestFactory, RequestSpec
from loadbench.workload.sessions import SessionFactory
from loadbench.workload.traceprompts import TracePrompts


@dataclass(slots=True)
class GeneratorStats:
    """Self-check of this worker per interval: CPU and event-loop lag."""

    cpu_max: dict[int, float] = field(default_factory=dict)
    # idx -> values (us), shipped as sparse counters (histogram.sparse_of): no histogram per interval
    lag: dict[int, list[int]] = field(default_factory=dict)
    schedule_lag: dict[int, list[int]] = field(default_factory=dict)  # open loop
    pool_waits: int = 0


class WorkerRuntime:
    def __init__(self, plan: RunPlan, worker_index: int, worker_id: str) -> None:
        self.plan = plan
        self.worker_index = worker_index
        self.worker_id = worker_id
        self.profile = plan.settings  # the profile's fields this process acts on (stream, timeout, ...)
        self.load = plan.load
        self.scenario = scenario_from_dict(dict(plan.workload.scenario))
        # the target's wire protocol, and the model as its paths name it
        self.dialect, model = target_dialect(plan.target.protocol, plan.target.model)
        self.auth = target_auth(plan.target)  # its key or AWS credentials, read here, never stored
        self.factory = RequestFactory(
            self.scenario, model=model, stream=self.profile.stream, wire=self.dialect,
            include_usage=plan.target.include_usage, seed=plan.seed,
            stream_index=worker_index, stream_count=max(plan.workers, 1),
            prompt_scale=plan.workload.prompt_scale, prompt_overhead=plan.workload.prompt_overhead,
        )
        # trace replay: the trace, its prompt text, and the trace index of every arrival slot handed out
        # and not yet taken, in the slots' order (the scheduler appends as it puts a slot; a user pops as it
        # takes one, with no switch in between)
        self.trace: Trace | None = None
        self.trace_prompts: TracePrompts | None = None
        self.trace_due: deque[int] = deque()
        if self.load.trace is not None:
            ref = self.load.trace
            self.trace = load_trace(ref.path, ref.format)
            self.trace_prompts = TracePrompts(seed=plan.seed, block_tokens=ref.block_tokens,
                                              prompt_scale=plan.workload.prompt_scale)
        self.sessions = (SessionFactory(self.scenario, self.factory, seed=plan.seed, stream_index=worker_index,
                                        stream_count=max(plan.workers, 1), prompt_scale=plan.workload.prompt_scale,
                                        worker_id=worker_id)
                         if self.scenario.sessions is not None else None)
        self.recorder = IntervalRecorder(plan.start_unix_ns, s_to_ns(plan.interval_s))
        self.outbox: list[bytes] = []
        self.gen = GeneratorStats()
        self.seq = 0
        # perf_counter_ns -> unix ns, fixed once so all of this process's timestamps agree
        self.unix_offset_ns = time.time_ns() - time.perf_counter_ns()
        parsed = urlsplit(plan.target.url.rstrip("/"))
        self.host_root = f"{parsed.scheme}://{parsed.netloc}"
        self.base_path = parsed.path
        self.open_loop = self.load.mode == "open"
        self.slots: Any = None  # open loop: intended perf_counter_ns for idle users (workers.slots)
        self.idle = 0  # open loop: users waiting for a slot
        self.in_flight = 0
        self.draining = False  # set at the end of the plan: send nothing new, let in-flight requests finish
        self.on_drained: Any = None  # callback once draining and nothing is in flight
        self.schedule_done = False
        # Accept: text/event-stream on every request, streamed or not, as always
        self.headers = self.auth.headers(self.dialect, stream=True, extra=plan.target.headers)
        self.signs = self.auth.auth == "aws"  # SigV4: each request is signed on its own (body and time)
        share = _share(self.load.max_requests, worker_index, max(plan.workers, 1))
        self.quota: int | None = share
        self.issued = 0
        self.timeout_s = self.profile.timeout_s
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)
        cpu = self._proc.cpu_times()
        self.cpu_at_start_s = cpu.user + cpu.system  # imports and set-up are not the cost of the load

    def quota_left(self) -> bool:
        return not self.draining and (self.quota is None or self.issued < self.quota)

    def start_drain(self) -> None:
        self.draining = True
        if self.slots is not None:
            # late: send — arrivals still waiting for a free user were never sent: count them
            self.trace_due.clear()
            while not self.slots.empty():
                intended = self.slots.get_nowait()
                if intended is not None:
                    self.record_dropped(intended, "not sent before the end of the plan: every user was busy "
                                                  "(max_in_flight)")
            self.slots.put(None)  # wake any user waiting for an arrival slot
        if self.in_flight == 0 and self.on_drained is not None:
            self.on_drained()

    def take_slot(self) -> int | None:
        """Open loop: wait for the next arrival slot (its intended perf_counter_ns), None when done."""
        if self.slots is None or self.schedule_done:
            return None
        self.idle += 1
        try:
            slot: int | None = self.slots.get()
        finally:
            self.idle -= 1
        if slot is None:
            self.schedule_done = True
        return slot

    def headers_for(self, spec: RequestSpec, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` as this request sends them: signed for itself where the protocol signs."""
        if not self.signs:
            return headers
        return self.auth.sign(self.host_root + self.base_path + spec.path, headers, spec.body)

    def next_request(self) -> RequestSpec:
        self.issued += 1
        self.in_flight += 1
        if self.trace is not None and self.trace_prompts is not None and self.trace_due:
            index = self.trace_due.popleft()
            return self.factory.trace_request(self.trace.requests[index], index, self.trace_prompts)
        return self.factory.next()

    def phase_of(self, intended_unix_ns: int) -> Phase:
        return self.load.phase_at(ns_to_s(intended_unix_ns - self.plan.start_unix_ns))

    def record_interrupted(self, spec: RequestSpec, intended_ns: int) -> None:
        """A request still in flight when its user was stopped at the end of the run (after the drain,
        or on a signal) or outlived its ramp-down's ``stop_timeout``: counted as ``interrupted``, never timed."""
        self.in_flight -= 1
        self.seq += 1
        intended_unix = intended_ns + self.unix_offset_ns
        sample = Sample(seq=self.seq, worker=self.worker_id, type=spec.request_type, target=self.plan.target.name,
                        phase=self.phase_of(intended_unix), intended_unix_ns=intended_unix,
                        outcome="interrupted", status=0,
                        error="still in flight when its user was stopped (the end of the run, after the drain)")
        self.recorder.record(sample, intended_unix, [])
        self.outbox.append(sample.to_json())

    def finish(self, spec: RequestSpec, m: Measured, slot_ns: int | None, backoff_s: float = 0.0,
               session: str | None = None, turn: int | None = None, session_turns: int | None = None) -> Sample:
        """Turn a measured request into a Sample, record it and queue it for the master. ``slot_ns``: the
        open loop's intended start; None in closed loop, where the request starts when it leaves
        (queue = 0 by definition) and user space's figures run from when the client began to send."""
        self.seq += 1
        intended_ns = m.sent_ns if slot_ns is None else slot_ns
        user_start_ns = (m.started_ns or m.sent_ns) if slot_ns is None else slot_ns
        tokens = m.token_times_ns
        first = tokens[0] if tokens else None
        last = tokens[-1] if tokens else None
        estimated = m.completion_tokens is None
        output_tokens = len(tokens) if estimated else m.completion_tokens
        if m.outcome != "ok" and estimated:
            output_tokens = len(tokens) or None
        d = derive(RequestTiming(intended_ns, m.sent_ns, m.first_byte_ns, first, last, m.end_ns,
                                 m.first_answer_ns, len(tokens)), output_tokens)
        usage = m.usage
        gaps = gaps_us(tokens) if len(tokens) > 1 and self.profile.stream else []
        stamped = m.stamped_chunks
        delays = read_delays_us(tokens, m.read_times_ns, stamped) if stamped else None
        intended_unix = intended_ns + self.unix_offset_ns
        sample = Sample(
            seq=self.seq, worker=self.worker_id, type=spec.request_type,
            target=m.headers.get("x-loadbench-target") or self.plan.target.name,
            phase=self.phase_of(intended_unix), intended_unix_ns=intended_unix,
            outcome=m.outcome, status=m.status,
            queue_us=d.queue_us, ttft_us=d.ttft_us, service_ttft_us=d.service_ttft_us,
            e2e_us=d.e2e_us, tpot_us=d.tpot_us, first_byte_us=d.first_byte_us,
            chunks=len(tokens),
            itl_mean_us=(sum(gaps) // len(gaps)) if gaps else None,
            itl_max_us=max(gaps) if gaps else None,
            stalls=count_stalls(gaps, ms_to_us(self.profile.stall_ms)) if self.profile.stream else None,
            prompt_tokens=m.prompt_tokens, output_tokens=output_tokens,
            tokens_source="estimated" if estimated else "usage",
            prompt_tokens_requested=spec.prompt_tokens_requested,
            output_tokens_requested=spec.output_tokens_requested,
            error=m.error, cache=m.headers.get("x-loadbench-cache"), metadata=spec.metadata,
            backoff_us=s_to_us(backoff_s) if backoff_s else None, session=session, turn=turn,
            session_turns=session_turns, ttft_answer_us=d.ttft_answer_us, error_kind=m.error_kind,
            cached_tokens=usage.cached_tokens if usage is not None else None,
            cache_write_tokens=usage.cache_write_tokens if usage is not None else None,
            reasoning_tokens=usage.reasoning_tokens if usage is not None else None,
            stamped_chunks=stamped if tokens else None,
            shared_chunks=shared_times(tokens) if stamped else None,
            ttft_user_us=ns_to_us(m.read_times_ns[0] - user_start_ns) if stamped and m.read_times_ns else None,
            send_delay_us=ns_to_us(m.sent_ns - m.started_ns) if m.send_stamped else None,
        )
        self.recorder.record(sample, m.end_ns + self.unix_offset_ns, gaps, delays)
        self.outbox.append(sample.to_json())
        self.in_flight -= 1
        if self.draining and self.in_flight == 0 and self.on_drained is not None:
            self.on_drained()
        return sample

    def record_dropped(self, intended_ns: int, reason: str = "max_in_flight reached") -> None:
        """An arrival that could not be sent: max_in_flight was reached (counted, never timed)."""
        self.seq += 1
        intended_unix = intended_ns + self.unix_offset_ns
        sample = Sample(seq=self.seq, worker=self.worker_id, type="default", target=self.plan.target.name,
                        phase=self.phase_of(intended_unix), intended_unix_ns=intended_unix,
                        outcome="dropped", status=0, error=reason)
        self.recorder.record(sample, intended_unix, [])
        self.outbox.append(sample.to_json())

    def record_schedule_lag(self, lag_us: int) -> None:
        self._record_gen(self.gen.schedule_lag, lag_us)

    def sample_cpu(self) -> None:
        idx = self.recorder.index_of(time.time_ns())
        cpu = self._proc.cpu_percent(None)
        self.gen.cpu_max[idx] = max(self.gen.cpu_max.get(idx, 0.0), cpu)

    def record_lag(self, lag_us: int) -> None:
        self._record_gen(self.gen.lag, lag_us)

    def _record_gen(self, by_interval: dict[int, list[int]], value_us: int) -> None:
        by_interval.setdefault(self.recorder.index_of(time.time_ns()), []).append(value_us)

    def drain(self) -> WorkerData:
        """Everything not yet shipped to the master (msgpack-friendly: string keys only)."""
        samples, self.outbox = self.outbox, []
        parts = self.recorder.drain()
        gen: dict[str, dict[str, Any]] = {str(i): {"cpu_max": c} for i, c in self.gen.cpu_max.items()}
        for name in ("lag", "schedule_lag"):
            for i, values in getattr(self.gen, name).items():
                gen.setdefault(str(i), {})[name] = hg.sparse_of(values)
        self.gen.cpu_max, self.gen.lag, self.gen.schedule_lag = {}, {}, {}
        cpu = self._proc.cpu_times()
        return {"worker": self.worker_id, "samples": samples,
                "cpu_s": round(cpu.user + cpu.system - self.cpu_at_start_s, 4),
                "in_flight": self.in_flight,
                "parts": {str(k): v for k, v in parts.items()}, "gen": gen}


def _share(total: int | None, index: int, count: int) -> int | None:
    """This worker's share of a request budget (the first ``total % count`` workers get one more)."""
    if total is None:
        return None
    return total // count + (1 if index < total % count else 0)
