"""The Locust master of a loadbench run: starts the load, merges worker data, writes the folder."""

from __future__ import annotations

import logging
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import gevent
import orjson
from locust.env import Environment
from locust.runners import STATE_STOPPED, STATE_STOPPING, MasterRunner

from loadbench.config import env_value
from loadbench.errors import ExitCode
from loadbench.metrics.live import LiveFeed
from loadbench.metrics.prometheus import LiveState
from loadbench.outcomes import CONNECTION_ERROR
from loadbench.plan.run import SECRETS_ENV, RunPlan
from loadbench.report.live import live_line
from loadbench.results import run_dir as rd
from loadbench.results.collector import Collector
from loadbench.results.status import RunStatus, Workers, write_status
from loadbench.units import ns_to_s, s_to_ns, us_to_ms
from loadbench.workers import messages as msg
from loadbench.workers.saturation_watch import SaturationWatch
from loadbench.workers.shape import PlanShape, ramp_down_grace_s
from loadbench.workers.user import LLMUser
from loadbench.workers.watch import parent_gone, watch

PROGRESS_EVERY_S = 5.0
FINAL_WAIT_S = 15.0
DRAIN_MAX_S = 60.0
INTERRUPT_DRAIN_S = 5.0  # after Ctrl-C / SIGTERM: finish what is in flight for at most this long
OPEN_LOOP_LEAD_S = 1.0
SPEC_RESEND_EVERY_S = 0.25  # the plan is sent again this often to a worker that has not acknowledged it
SPEC_ACK_WAIT_S = 10.0  # no users are spawned until every worker has the plan; past this the run fails
UNREACHABLE_AFTER = 20  # finished requests, all connection errors, none ok


def _say(line: str) -> None:
    print(line, flush=True)


class Master:
    def __init__(self, plan: RunPlan, run_dir: Path, bind_host: str, bind_port: int,
                 expect_workers: int, wait_workers_s: float, runner: MasterRunner | None = None,
                 greeted: set[str] | None = None) -> None:
        """``runner``: an existing master runner (the web UI runs one run after another on it; its
        owner forwards the worker messages to the current run and keeps it after the run).
        ``greeted``: with it, the ids of the workers that have said HELLO so far (see messages.HELLO)."""
        self.plan = plan
        self.run_dir = run_dir
        self.settings = plan.settings
        self.load = plan.load
        self.expect = expect_workers
        self.wait_workers_s = wait_workers_s
        if self.load.mode == "open":
            # the users are idle request slots, spawned at once on purpose: not a ramp to warn about
            logging.getLogger("locust.runners").addFilter(_NoSpawnRateWarning())
        self.owns_runner = runner is None
        self.runner: MasterRunner = runner or new_runner(bind_host, bind_port)
        self.env = self.runner.environment
        self.live = LiveFeed()
        self.collector: Collector | None = None
        self.finals: set[str] = set()
        self.drained: set[str] = set()
        self.stop_reason: str | None = None
        self.stop_signal: str | None = None
        self.interrupted = False
        self.aborted = False  # stopped because the target only produced errors (exit 4)
        self.stop_now = False  # end without draining (second signal, launcher gone)
        self.status = RunStatus(state="waiting", workers=Workers(expected=expect_workers))
        self.lost: list[str] = []
        self.started: set[str] = set()
        self.spec_acked: set[str] = set()
        self.greeted: set[str] = greeted if greeted is not None else set()
        self.users_at: dict[int, int] = {}
        self.saturation: SaturationWatch | None = None  # the profile's stop_on_saturation, once the load starts
        if self.owns_runner:
            self.env.events.worker_report.add_listener(self._on_report)
            msg.FINAL.on(self.runner, self._on_final)
            msg.DRAINED.on(self.runner, self._on_drained)
            msg.SPEC_ACK.on(self.runner, lambda _ack, node: self.spec_acked.add(node))  # see _await_spec_acks
            msg.HELLO.on(self.runner, lambda _hello, node: self.on_hello(node))

    # --- worker messages -------------------------------------------------------------------
    def _on_report(self, client_id: str, data: dict[str, Any]) -> None:
        if self.collector is not None:
            self.collector.add(data.get(msg.REPORT_KEY))
            if self.saturation is not None:
                self.saturation.on_report(data.get(msg.REPORT_KEY))

    def _on_final(self, data: msg.WorkerData, node_id: str) -> None:
        if self.collector is not None:
            self.collector.add(dict(data))
        self.finals.add(node_id)

    def _on_drained(self, _: msg.Drained, node_id: str) -> None:
        self.drained.add(node_id)

    def on_hello(self, node_id: str) -> None:
        """A worker can take the plan now. One that joins a running run (Locust gives it users when
        it rebalances) gets the plan at once."""
        self.greeted.add(node_id)
        if self.collector is not None and self.stop_reason is None:
            self.runner.send_message(msg.SPEC.name, self.plan.to_json(), client_id=node_id)

    def _ready(self) -> list[str]:
        """Workers connected, idle and listening for the plan."""
        return [c.id for c in self.runner.clients.ready if c.id in self.greeted]

    # --- the run ---------------------------------------------------------------------------
    def request_stop(self, reason: str, interrupted: bool = False, signal_name: str | None = None,
                     at_once: bool = False) -> None:
        """``at_once``: no draining (the launcher is gone); a second signal also stops at once."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_signal = signal_name
        elif signal_name is not None:
            at_once = True
        self.interrupted = self.interrupted or interrupted
        self.stop_now = self.stop_now or at_once

    def _set_status(self, **changes: Any) -> None:
        """status.json is this process's alone: rewritten atomically whenever the run's state changes."""
        self.status = replace(self.status, **changes)
        write_status(self.run_dir, self.status)

    def _context(self, idx: int) -> dict[str, Any]:
        t = (idx + 0.5) * self.plan.interval_s
        return {"users": self.users_at.get(idx), "target_rps": _rounded(self.load.rate_at(t)),
                "stage": self.load.label_at(t),
                # after the plan only requests sent inside it finish: "drain", not cool-down
                "phase": "drain" if t >= self.load.total_s else self.load.phase_at(t)}

    def run(self) -> ExitCode:
        deadline = time.monotonic() + self.wait_workers_s
        while len(self._ready()) < self.expect:
            if time.monotonic() > deadline or self.stop_reason:
                return self._fail_workers(f"only {len(self._ready())} of {self.expect} workers connected")
            gevent.sleep(0.05)
        # Open loop: the first arrival may only come once the request slots (users) exist.
        lead_ns = s_to_ns(OPEN_LOOP_LEAD_S) if self.load.mode == "open" else 0
        self.plan = replace(self.plan, start_unix_ns=time.time_ns() + lead_ns)
        self.collector = Collector(self.run_dir, self.plan.start_unix_ns, self.plan.interval_s, self._context)
        self.collector.live = self.live
        if self.settings.stop_on_saturation is not None:
            self.saturation = SaturationWatch(self.settings.stop_on_saturation, self.plan.start_unix_ns)
        self._set_status(state="running", load_start_unix_s=ns_to_s(self.plan.start_unix_ns),
                         planned_duration_s=self.load.total_s)
        self.started = set(self._ready())  # a worker leaving from now on is lost
        missing = self._await_spec_acks()
        if missing:
            self.collector.close()
            return self._fail_workers(f"{len(missing)} of {len(self.started)} workers never acknowledged the run "
                                      f"plan within {SPEC_ACK_WAIT_S:g} s ({', '.join(missing)}); nothing was sent")
        # a ramp-down lets surplus users finish their request (Locust sends this with every spawn)
        self.env.stop_timeout = ramp_down_grace_s(self.load, self.settings.timeout_s)
        # open loop: users (request slots) are spawned during the lead, before the first arrival
        self.env.shape_class = PlanShape(self.load, lead_s=0.0)
        self.env.shape_class.runner = self.runner
        self.runner.start_shape()
        bg = [gevent.spawn(self._flusher), gevent.spawn(self._progress), gevent.spawn(self._watch_workers)]
        load_end_unix_s: float | None = None
        total_s = self.load.total_s
        t0 = time.monotonic() + ns_to_s(lead_ns)
        max_requests = self.load.max_requests
        while self.stop_reason is None:
            gevent.sleep(0.1)
            if time.monotonic() - t0 >= total_s:
                self.request_stop("duration reached")
            elif self.runner.state in (STATE_STOPPED, STATE_STOPPING):
                self.request_stop("the Locust runner stopped")
            elif max_requests is not None and self._finished() >= max_requests:
                self.request_stop("max_requests reached")
            elif self._unreachable():
                self.request_stop("target unreachable: every request failed to connect")
                self.aborted = True
            elif (reason := self._abort_reason()) is not None:
                self.request_stop(reason)
                self.aborted = True
            elif self.saturation is not None and (reason := self.saturation.reason()) is not None:
                self.request_stop(reason)  # what was measured stands: drained and summarised as usual
                # the load ends here, not after the drain: the measure window (and the arrivals it
                # offered) ends with the last arrival sent
                load_end_unix_s = time.time()
        if self.stop_now or self.aborted or self.stop_reason == "every worker was lost":
            pass
        elif self.interrupted:
            self._drain(min(self.settings.timeout_s, INTERRUPT_DRAIN_S), "interrupt")
        else:
            self._drain(min(self.settings.timeout_s, DRAIN_MAX_S), "end")
        _say(f"loadbench: stopping ({self.stop_reason})")
        self._stop_workers()
        for g in bg:
            g.kill(block=False)
        self.collector.close()
        self._set_status(
            state="interrupted" if self.interrupted else "finished", end_unix_s=load_end_unix_s or time.time(),
            interrupted=self.interrupted, stop_reason=self.stop_reason, signal=self.stop_signal,
            workers=Workers(expected=self.expect, seen=tuple(sorted(self.collector.workers_seen)),
                            lost=tuple(self.lost), cpu_s=dict(self.collector.worker_cpu_s)),
        )
        self._quit()
        if self.interrupted:
            return ExitCode.INTERRUPTED
        return ExitCode.TARGET_FAILED if self.aborted else ExitCode.OK

    def live_state(self) -> LiveState:
        """What the web page and Prometheus read (metrics.live, metrics.prometheus)."""
        t_s = time.time() - ns_to_s(self.plan.start_unix_ns) if self.plan.start_unix_ns else 0.0
        return LiveState(run_id=self.plan.run_id, feed=self.live,
                         outcomes=dict(self.collector.outcomes) if self.collector else {},
                         users=self.runner.user_count if self.load.mode == "closed" else None,
                         target_rps=_rounded(self.load.rate_at(t_s)) if self.load.mode == "open" else None)

    def _quit(self) -> None:
        if self.owns_runner:
            self.runner.quit()

    def _finished(self) -> int:
        assert self.collector is not None
        t = self.collector.totals
        return t.ok + t.failed

    def _unreachable(self) -> bool:
        assert self.collector is not None
        t = self.collector.totals
        outcomes = self.collector.outcomes
        return (t.ok == 0 and t.failed >= UNREACHABLE_AFTER
                and outcomes.get(CONNECTION_ERROR, 0) == t.failed)

    def _abort_reason(self) -> str | None:
        """The profile's ``abort_on`` rule, once enough requests have finished."""
        rule = self.settings.abort_on
        assert self.collector is not None
        t = self.collector.totals
        finished = t.ok + t.failed
        if rule is None or finished < rule.after_requests:
            return None
        rate = t.failed / finished
        if rate < rule.error_rate:
            return None
        return (f"abort_on: {t.failed} of {finished} requests failed ({rate:.0%} >= {rule.error_rate:.0%} "
                f"after {rule.after_requests})")

    def _drain(self, limit_s: float, reason: Literal["end", "interrupt"]) -> None:
        """Send nothing new and let in-flight requests finish, so the slowest requests of the run are
        measured rather than cut (cutting them would bias every percentile low). Bounded; after a
        signal only briefly, and a second signal ends it at once. Requests still in flight when it
        ends are recorded by the workers as ``interrupted``."""
        msg.DRAIN.send(self.runner, {"reason": reason, "record_after_s": limit_s})
        deadline = time.monotonic() + limit_s
        connected = {c.id for c in self.runner.clients.all if c.state != "missing"}
        while time.monotonic() < deadline and not self.stop_now:
            if connected <= self.drained:
                return
            gevent.sleep(0.02)
        _say(f"loadbench: requests still in flight after {limit_s:g} s of draining were recorded as interrupted")

    def _stop_workers(self) -> None:
        connected = {c.id for c in self.runner.clients.all}
        if self.runner.state not in (STATE_STOPPED, STATE_STOPPING):
            gevent.spawn(self.runner.stop)
        deadline = time.monotonic() + FINAL_WAIT_S
        while time.monotonic() < deadline:
            alive = {c.id for c in self.runner.clients.all} | (connected - set(self.lost))
            if alive <= self.finals or not alive - self.finals - set(self.lost):
                break
            gevent.sleep(0.05)
        missing = connected - self.finals - set(self.lost)
        if missing:
            _say(f"loadbench: no final report from {len(missing)} worker(s); their last second may be lost")

    def _flusher(self) -> None:
        assert self.collector is not None
        while True:
            gevent.sleep(0.25)
            idx = int((time.time_ns() - self.plan.start_unix_ns) // s_to_ns(self.plan.interval_s))
            self.users_at[idx] = max(self.users_at.get(idx, 0), self.runner.user_count)
            self.collector.flush_ready()

    def _progress(self) -> None:
        assert self.collector is not None
        t0 = time.monotonic()
        last = t0
        sessions = self.plan.workload.scenario.get("sessions") is not None
        while True:
            gevent.sleep(PROGRESS_EVERY_S)
            now = time.monotonic()
            w = self.collector.take_window()
            span_s = now - last
            last = now
            ttft = w.ttft
            seen = ttft.get_total_count()
            tot = self.collector.totals
            is_open = self.load.mode == "open"
            # every arrival ends ok, failed or dropped: their rate is the achieved arrival rate; a sessions
            # run's arrival starts a session, so its later turns are not arrivals
            arrived = (w.sessions_started if sessions else w.ok + w.failed) + w.dropped
            _say(live_line(
                elapsed_s=now - t0, finished_rps=w.ok / span_s,
                ttft_p50_ms=us_to_ms(ttft.get_value_at_percentile(50)) if seen else None,
                ttft_p99_ms=us_to_ms(ttft.get_value_at_percentile(99)) if seen else None,
                ok=tot.ok, failed=tot.failed, dropped=tot.dropped,
                users=None if is_open else self.runner.user_count,
                target_rps=self.load.rate_at(time.time() - ns_to_s(self.plan.start_unix_ns)) if is_open else None,
                achieved_rps=arrived / span_s if is_open else None, arrivals="sessions" if sessions else "req"))

    def _await_spec_acks(self) -> list[str]:
        """Send the plan and wait until every worker has acknowledged it, sending it again meanwhile:
        users spawned on a worker without the plan would send nothing (and to the wrong host), and the
        run would measure nothing while every worker looked healthy. Returns the workers still
        without it when the wait ended (empty: all have it)."""
        deadline = time.monotonic() + SPEC_ACK_WAIT_S
        sent_at = -SPEC_RESEND_EVERY_S
        while self.stop_reason is None:
            waiting = sorted(self.started - self.spec_acked)
            now = time.monotonic()
            if not waiting or now > deadline:
                return waiting
            if now - sent_at >= SPEC_RESEND_EVERY_S:
                for client_id in waiting:
                    self.runner.send_message(msg.SPEC.name, self.plan.to_json(), client_id=client_id)
                sent_at = now
            gevent.sleep(0.01)
        return []  # stopped by a signal while waiting: the main loop ends the run

    def _fail_workers(self, reason: str) -> ExitCode:
        _say(f"loadbench: {reason}")
        self._set_status(state="failed", stop_reason=reason, end_unix_s=time.time())
        self._quit()
        return ExitCode.WORKERS_MISSING

    def _watch_workers(self) -> None:
        while True:
            gevent.sleep(0.5)
            present = {c.id for c in self.runner.clients.all}
            # a worker that went silent stays listed as missing; one that quit (e.g. its own heartbeat
            # check gave up on us) is gone from the list: both leave the load short of the plan
            left = [(c.id, "stopped responding") for c in self.runner.clients.all if c.state == "missing"]
            if self.stop_reason is None:  # once stopping, workers leave on purpose
                left += [(wid, "left the run") for wid in sorted(self.started - present)]
            for wid, how in left:
                if wid in self.lost:
                    continue
                self.lost.append(wid)
                _say(f"loadbench: worker {wid} {how}; its data so far is kept")
                if self.collector is not None and not self.runner.clients.ready and all(
                        x.state == "missing" for x in self.runner.clients.all):
                    self.request_stop("every worker was lost")


def new_runner(bind_host: str, bind_port: int) -> MasterRunner:
    runner = Environment(user_classes=[LLMUser]).create_master_runner(bind_host, bind_port)
    # A worker that goes missing has its users spawned again on the others (closed loop; an open
    # loop's arrivals are split by worker and cannot move). The run is marked not valid anyway.
    setattr(runner, "rebalancing_enabled", lambda: True)  # noqa: B010 (Locust reads parsed options)
    return runner


class _NoSpawnRateWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Your selected spawn rate is very high")


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 3)


def main(plan_path: Path, run_dir: Path, bind_host: str, bind_port: int, expect_workers: int,
         wait_workers_s: float, parent_pid: int | None = None, prometheus_port: int | None = None) -> int:
    plan = RunPlan.from_json(rd.read_json(plan_path))
    secrets = env_value(SECRETS_ENV)  # header values plan.json holds only as <redacted>
    if secrets:
        plan.target.headers.update(orjson.loads(secrets))
    master = Master(plan, run_dir, bind_host, bind_port, expect_workers, wait_workers_s)
    if prometheus_port is not None:
        from loadbench.metrics.prometheus import serve

        serve(prometheus_port, master.live_state)
    gevent.signal_handler(signal.SIGTERM, master.request_stop, "terminated (SIGTERM)", True, "SIGTERM")
    gevent.signal_handler(signal.SIGINT, master.request_stop, "interrupted (Ctrl-C, SIGINT)", True, "SIGINT")
    if parent_pid is not None:
        watch(lambda: parent_gone(parent_pid),
              lambda: master.request_stop("the loadbench process that started the run is gone", True, None,
                                          at_once=True))
    _say(f"loadbench master listening on tcp://{bind_host}:{master.runner.master_bind_port}")
    code = master.run()
    sys.stdout.flush()
    return code
