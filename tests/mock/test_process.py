"""``loadbench mock`` as a real subprocess: listening line, option errors, workers, signals."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse

import pytest

from loadbench.procs import start_server


def _get(url: str, path: str) -> tuple[int, dict]:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadbench", "mock", *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.slow
def test_importing_the_mock_never_imports_gevent_or_locust() -> None:
    code = ("import sys, loadbench.mock.app, loadbench.mock.server, loadbench.cli.mock_cmd; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('gevent', 'locust')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args, name", [
    (["--error-rate", "1.5"], "--error-rate"),
    (["--error-status", "200"], "--error-status"),
    (["--tokens-per-chunk", "0"], "--tokens-per-chunk"),
    (["--ttft-ms", "-1"], "--ttft-ms"),
    (["--workers", "0"], "--workers"),
    (["--port", "70000"], "--port"),
])
def test_invalid_options_exit_2_naming_the_option(args: list[str], name: str) -> None:
    done = _run_cli(*args)
    assert done.returncode == 2
    assert name in done.stderr
    assert "listening" not in done.stdout


@pytest.mark.slow
def test_busy_port_exits_2_without_a_listening_line() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        done = _run_cli("--port", str(holder.getsockname()[1]))
    assert done.returncode == 2
    assert "cannot listen" in done.stderr and "listening on" not in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_prints_one_listening_line_and_exits_0_on_signal(sig: signal.Signals) -> None:
    server = start_server(["mock", "--port", "0", "--ttft-ms", "1"])
    try:
        assert re.fullmatch(r"loadbench mock listening on http://127\.0\.0\.1:\d+", server.output[0])
        status, health = _get(server.url, "/health")
        assert (status, health) == (200, {"status": "ok"})
        server.proc.send_signal(sig)
        assert server.proc.wait(timeout=15) == 0
    finally:
        server.stop()
    assert [line for line in server.output if "listening" in line] == [server.output[0]]


@pytest.mark.slow
def test_workers_share_the_port_and_stop_cleanly() -> None:
    server = start_server(["mock", "--port", "0", "--workers", "2"])
    try:
        pids = set()
        deadline = time.monotonic() + 20
        # each request opens a new connection; the kernel spreads them over both sockets
        for _ in range(200):
            if len(pids) == 2 or time.monotonic() > deadline:
                break
            _, stats = _get(server.url, "/mock/stats")
            pids.add(stats["pid"])
        assert len(pids) == 2
        assert server.proc.pid not in pids
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=20) == 0
    finally:
        server.stop()
    assert sum("listening on" in line for line in server.output) == 1
