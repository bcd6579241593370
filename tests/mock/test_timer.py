"""The pacer's timerfd: real wake-ups of a real event loop (uvloop, as the mock runs), never before their
deadline; a cancelled or replaced callback never runs; without a timerfd the loop's own timer is used."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest
import uvloop

from loadbench.mock import timer
from loadbench.mock.timer import MS_RESOLUTION_S, TimerFd, precise_timer

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")


def _run(scenario):  # type: ignore[no-untyped-def]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(scenario())


@linux
def test_it_wakes_at_each_deadline_never_before() -> None:
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        call_later, resolution_s, fd = precise_timer(loop)
        assert isinstance(fd, TimerFd) and resolution_s == 0.0
        lateness: list[float] = []
        try:
            for i in range(40):
                due = time.monotonic() + 0.0005 + (i % 7) * 0.0013
                fired = loop.create_future()
                call_later(due - time.monotonic(), lambda f=fired: f.set_result(time.monotonic()))
                lateness.append(await asyncio.wait_for(fired, 5.0) - due)
        finally:
            fd.close()
        return lateness

    lateness = _run(scenario)
    assert min(lateness) >= 0.0  # never early
    assert max(lateness) < 1.0  # and it fired every time (a lost wake-up would time out above)


@pytest.mark.alone
@linux
def test_its_wake_ups_are_finer_than_the_loops_whole_milliseconds() -> None:
    async def lateness_ms(call_later, resolution_s: float) -> float:  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        out = []
        for i in range(60):
            due = time.monotonic() + 0.002 + (i % 5) * 0.00037
            fired = loop.create_future()
            delay = due - time.monotonic()
            if resolution_s:
                delay = -(-delay // resolution_s) * resolution_s  # as the pacer rounds it
            call_later(delay, lambda f=fired: f.set_result(time.monotonic()))
            out.append((await fired - due) * 1000)
        return sorted(out)[len(out) // 2]

    async def scenario() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        call_later, resolution_s, fd = precise_timer(loop)
        assert fd is not None
        try:
            return await lateness_ms(call_later, resolution_s), await lateness_ms(loop.call_later, MS_RESOLUTION_S)
        finally:
            fd.close()

    precise_ms, whole_ms = _run(scenario)
    assert precise_ms < 0.5 and precise_ms < whole_ms, (precise_ms, whole_ms)


@linux
def test_a_cancelled_or_replaced_callback_never_runs_and_close_frees_the_fd() -> None:
    async def scenario() -> tuple[list[str], int]:
        loop = asyncio.get_running_loop()
        call_later, _, fd = precise_timer(loop)
        assert fd is not None
        ran: list[str] = []
        call_later(0.002, lambda: ran.append("cancelled")).cancel()  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)
        first = call_later(0.003, lambda: ran.append("replaced"))
        call_later(0.004, lambda: ran.append("kept"))
        first.cancel()  # type: ignore[attr-defined]  # an old handle cannot cancel the callback that replaced it
        await asyncio.sleep(0.02)
        number = fd._fd
        fd.close()
        return ran, number

    ran, number = _run(scenario)
    assert ran == ["kept"]
    with pytest.raises(OSError):
        os.fstat(number)


def test_without_a_timerfd_the_loop_timer_and_its_milliseconds_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timer, "_libc", lambda: None)

    async def scenario() -> tuple[object, float, object]:
        loop = asyncio.get_running_loop()
        call_later, resolution_s, fd = precise_timer(loop)
        return call_later == loop.call_later, resolution_s, fd

    assert _run(scenario) == (True, MS_RESOLUTION_S, None)

