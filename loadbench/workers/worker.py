"""A Locust worker process of a loadbench run."""

from __future__ import annotations

import gc
import itertools
import signal
import time
from typing import Any

import gevent
import locust.runners
from locust.env import Environment

from loadbench.plan.run import RunPlan
from loadbench.units import ns_to_us, s_to_ns
from loadbench.workers import messages as msg
from loadbench.workers import sockets, state
from loadbench.workers.runtime import WorkerRuntime
from loadbench.workers.user import LLMUser, cut_leaving
from loadbench.workers.watch import process_gone, watch

# Seconds without a master heartbeat before a worker quits. A remote worker has only the heartbeat
# to tell that its master is gone; a local one watches the master's process (0.25 s) and keeps a
# long heartbeat timeout, because a busy machine can hold a niced master's heartbeats (or this
# worker's own loop, while it builds the run) for seconds: at 3 s, local workers quit healthy runs.
MASTER_SILENT_S = 5
LOCAL_MASTER_SILENT_S = 30
REPORT_EVERY_S = 1.0  # ship samples and histograms to the master about every second
# The loop-lag probe sleeps this long and records how late it wakes. 50 samples a second, so the
# loop-lag P99 that bounds the client-side delay (metrics.client_delay) rests on thousands of
# samples, not on the few worst of a hundred; CPU is still sampled every 100 ms.
LAG_PROBE_S = 0.02
CPU_EVERY_PROBES = 5


def _lag_probe() -> None:
    for n in itertools.count():
        before = state.RUNTIME
        t = time.perf_counter_ns()
        gevent.sleep(LAG_PROBE_S)
        late_us = ns_to_us(time.perf_counter_ns() - t - s_to_ns(LAG_PROBE_S))
        rt = state.RUNTIME
        # a sleep that began before the run was set up measured the set-up (its full GC), not the load
        if rt is not None and rt is before:
            rt.record_lag(max(late_us, 0))
            if n % CPU_EVERY_PROBES == 0:
                rt.sample_cpu()


def _say(line: str) -> None:
    print(line, flush=True)


def _master_gone(runner: Any) -> None:
    """Nothing this worker sends from now on would be recorded: stop at once and leave."""
    _say("loadbench worker: the master is gone; stopping")
    if state.RUNTIME is not None:
        state.RUNTIME.start_drain()
    runner.quit()


def main(master_host: str, master_port: int, master_pid: int | None = None) -> int:
    return serve(connect(master_host, master_port, master_pid), master_pid)


def connect(master_host: str, master_port: int, master_pid: int | None = None) -> Any:
    """The worker runner, connected: it already reads the master's messages (see messages.HELLO)."""
    locust.runners.WORKER_REPORT_INTERVAL = REPORT_EVERY_S
    # A master that stops answering (killed, its machine gone) must not leave this worker sending
    # for Locust's default 60 s with no one recording: quit after a few missed heartbeats (1 s each).
    locust.runners.MASTER_HEARTBEAT_TIMEOUT = MASTER_SILENT_S if master_pid is None else LOCAL_MASTER_SILENT_S
    sockets.install()  # the users' connections stamp their sends and reads (loadbench.rxstamp)
    env = Environment(user_classes=[LLMUser])
    runner = env.create_worker_runner(master_host, master_port)  # returns once the master answered
    _say(f"loadbench worker w{runner.worker_index}: connected to the master at {master_host}:{master_port}")
    return runner


def serve(runner: Any, master_pid: int | None = None) -> int:
    """Take the plan, run the users the master spawns, ship what they measure; returns at the end."""
    env = runner.environment

    def on_spec(data: dict[str, Any], _: str) -> None:
        plan = RunPlan.from_json(data)
        if state.RUNTIME is not None and state.RUNTIME.plan.run_id == plan.run_id:
            msg.SPEC_ACK.send(runner, {"worker": state.RUNTIME.worker_id})  # a resend: we have it already
            return
        rt = WorkerRuntime(plan, runner.worker_index, f"w{runner.worker_index}")
        _say(f"loadbench worker {rt.worker_id}: running {plan.run_id}: {rt.load.mode} loop for {rt.load.total_s:g} s "
             f"against {plan.target.url} (model {plan.target.model}), worker {rt.worker_index + 1} of {plan.workers}")
        LLMUser.host = rt.host_root
        rt.on_drained = lambda: msg.DRAINED.send(runner, {"worker": rt.worker_id})
        # Everything built so far lives for the whole run: keep it out of the cyclic GC, whose full
        # collections otherwise stall the loop (and every stream's timing) for tens of ms.
        gc.collect()
        gc.freeze()
        state.RUNTIME = rt  # after the set-up: the loop-lag probe measures the load, not this
        msg.SPEC_ACK.send(runner, {"worker": rt.worker_id})
        if rt.open_loop:
            from loadbench.workers.openloop import start_scheduler

            start_scheduler(rt)

    def on_report(client_id: str, data: dict[str, Any]) -> None:
        if state.RUNTIME is not None:
            data[msg.REPORT_KEY] = state.RUNTIME.drain()

    def on_test_stopping(**_: Any) -> None:
        # The end of the run (after the master's drain, or on a signal): stop every user at once, so
        # what is still in flight is recorded as interrupted before the final report, and be ready
        # again at once (Locust waits stop_timeout after a stop); the next run's spawn resets it.
        env.stop_timeout = 0.0
        cut_leaving()

    def on_test_stop(**_: Any) -> None:
        if state.RUNTIME is not None:
            msg.FINAL.send(runner, state.RUNTIME.drain())

    def on_drain(order: msg.DrainOrder, _: str) -> None:
        if state.RUNTIME is not None:
            state.RUNTIME.start_drain()

    msg.SPEC.on(runner, on_spec)
    msg.DRAIN.on(runner, on_drain)
    env.events.report_to_master.add_listener(on_report)
    env.events.test_stopping.add_listener(on_test_stopping)
    env.events.test_stop.add_listener(on_test_stop)
    msg.HELLO.send(runner, {"worker": f"w{runner.worker_index}"})  # after the handlers: see messages.HELLO

    def on_signal() -> None:
        # Killed directly (not through the master): stop users, ship what was measured, leave.
        runner.stop()
        runner.greenlet.kill(block=False)

    gevent.signal_handler(signal.SIGTERM, on_signal)
    gevent.signal_handler(signal.SIGINT, on_signal)
    if master_pid is not None:
        watch(lambda: process_gone(master_pid), lambda: _master_gone(runner))
    probe = gevent.spawn(_lag_probe)
    runner.greenlet.join()
    probe.kill(block=False)
    rt = state.RUNTIME
    _say(f"loadbench worker w{runner.worker_index}: done"
         + (f": {rt.issued} requests sent" if rt is not None else ": the master sent no run"))
    return 0
