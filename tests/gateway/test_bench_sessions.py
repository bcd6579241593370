"""The paired bench's servers share CPU 1 alike: each runs in a session of its own.

With the kernel's autogroup scheduling a core's time is shared between sessions first; a server left
in the benchmark's own session (with its load generator) would wait longer for the core than the
others and, finding more bytes per read, spend less CPU per request for the scheduler's reasons.
"""

from __future__ import annotations

import os

from bench.gateway_bench import bare_relay
from loadbench.procs import start_server


def test_the_bare_relay_and_the_servers_beside_it_each_lead_a_session_of_their_own() -> None:
    mock = start_server(["mock", "--port", "0"])
    try:
        with bare_relay(mock.url) as (_url, relay):
            sessions = {os.getsid(relay.pid), os.getsid(mock.proc.pid)}
            assert os.getsid(relay.pid) == relay.pid  # it leads its session
            assert os.getsid(mock.proc.pid) == mock.proc.pid
            assert len(sessions) == 2
            assert os.getsid(0) not in sessions  # neither shares the benchmark's
    finally:
        mock.stop()
