"""`loadbench run --web` / `--prometheus-port`: bad input fails with exit 2 before anything starts."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import run_loadbench


@pytest.mark.parametrize("args", [["--web", "--web-port"], ["--duration", "1", "--prometheus-port"]])
def test_a_taken_port_is_refused_before_any_server_starts(args: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_loadbench("run", "--no-calibrate", *args, str(port), timeout_s=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"127.0.0.1:{port} is not free" in proc.stderr
    assert "started the embedded mock" not in proc.stdout


def test_web_with_master_is_a_usage_error() -> None:
    proc = run_loadbench("run", "--web", "--master", timeout_s=60)
    assert proc.returncode == 2
    assert "--web runs its workers locally" in proc.stderr
