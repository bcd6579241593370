"""Ctrl-C (SIGINT) during an evaluation stops it with exit 130, keeping the calls scored so far.

Python turns SIGINT into KeyboardInterrupt only when the process started with SIGINT at its default
action, and ``asyncio.run`` turns it into a cancellation only when that handler is in place. A
process started with SIGINT ignored keeps it ignored: every background job of a non-interactive
shell (``cmd &`` in a script, and whatever it starts, such as a test runner's subprocesses) and
anything under ``nohup``. There an evaluation ran on to its end after a SIGINT and exited 0. So the
evaluation installs Python's handler itself, as ``loadbench run`` installs its own.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt inside the block whatever the process inherited; the previous
    handler is restored after it. Off the main thread (where no handler can be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
