"""Notice that the process a run depends on is gone, so no load is sent with no one recording it.

The master and the local workers run in sessions of their own (a Ctrl-C in the terminal must reach
only the launcher), so a ``kill -9`` of the launcher does not reach them: they poll instead. The
master stops when its parent (the launcher) is gone; a local worker stops when its master is.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import gevent
import psutil

POLL_S = 0.25


def parent_gone(parent_pid: int) -> bool:
    """Our parent died: we were re-parented (to init or a subreaper)."""
    return os.getppid() != parent_pid


def process_gone(pid: int) -> bool:
    """``pid`` has exited (a zombie not yet reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return True


def watch(gone: Callable[[], bool], then: Callable[[], None], poll_s: float = POLL_S) -> gevent.Greenlet:
    """A greenlet that calls ``then()`` once, as soon as ``gone()`` is true."""

    def loop() -> None:
        while not gone():
            gevent.sleep(poll_s)
        then()

    return gevent.spawn(loop)
