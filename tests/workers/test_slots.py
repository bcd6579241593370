"""Open-loop slots go to the user idle most recently; queued slots keep their order; a slot handed to a
user killed before it took it goes to another, never lost."""

from __future__ import annotations

import gevent
import pytest
from gevent.queue import Empty

from loadbench.workers.slots import Slots


def _waiters(slots: Slots, names: list[str], got: list[tuple[str, int | None]]) -> list[gevent.Greenlet]:
    out = []
    for name in names:
        out.append(gevent.spawn(lambda n=name: got.append((n, slots.get()))))
        gevent.sleep(0)  # each one waits before the next: "c" is the most recently idle
    return out


def test_a_slot_goes_to_the_user_idle_most_recently_and_they_resume_in_hand_out_order() -> None:
    slots, got = Slots(), []
    users = _waiters(slots, ["a", "b", "c"], got)
    slots.put(1)
    slots.put(2)
    gevent.joinall(users[1:], timeout=1)
    assert got == [("c", 1), ("b", 2)]  # the warm users first, resumed in the order they were handed
    slots.put(None)
    gevent.joinall(users, timeout=1)
    assert got[-1] == ("a", None)


def test_slots_nobody_waited_for_are_taken_oldest_first() -> None:
    slots = Slots()
    for v in (1, 2, 3):
        slots.put(v)
    assert slots.qsize() == 3 and not slots.empty()
    assert slots.get() == 1 and slots.get_nowait() == 2 and slots.get() == 3
    assert slots.empty()
    with pytest.raises(Empty):
        slots.get_nowait()


def test_a_user_killed_while_waiting_loses_no_slot() -> None:
    slots, got = Slots(), []
    a, b = _waiters(slots, ["a", "b"], got)
    b.kill()  # never handed anything: it simply leaves the idle stack
    slots.put(7)
    a.join(timeout=1)
    assert got == [("a", 7)]
    c = gevent.spawn(slots.get)
    gevent.sleep(0)
    c.kill(block=False)  # its death is due before the wake-up the next line schedules ...
    slots.put(8)  # ... so c is handed the slot but dies before it resumes
    c.join(timeout=1)
    assert c.dead and slots.get_nowait() == 8  # and gave it back, first in line
