"""``LOADBENCH_RECEIVE_CLOCK=user`` turns the worker's kernel receive stamps off (the accuracy matrix's
user-space cells): the worker process's clock then stamps no connection, as on a host without them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from loadbench import rxstamp
from loadbench.workers.receive import RECEIVE_CLOCK_ENV

_PROBE = ("import socket; from loadbench.workers.receive import RECEIVE_CLOCK as c; s = socket.socket(); "
          "print(c.available, c.stamps(s)); s.close()")


def _clock(value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != RECEIVE_CLOCK_ENV}
    if value is not None:
        env[RECEIVE_CLOCK_ENV] = value
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not rxstamp.supported(), reason="kernel receive stamps need Linux")
def test_the_environment_turns_the_stamps_off_and_nothing_else_does() -> None:
    assert _clock(None) == "True True"
    assert _clock("kernel") == "True True"
    assert _clock("user") == "False False"
