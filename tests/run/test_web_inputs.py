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


@pytest.mark.parametrize(("args", "message"), [(["--master"], "--web runs its workers locally"),
                                               (["--pricing", "pricing.yaml"], "--pricing is for a headless run")])
def test_web_with_a_headless_only_option_is_a_usage_error(args: list[str], message: str) -> None:
    proc = run_loadbench("run", "--web", *args, timeout_s=60)
    assert proc.returncode == 2
    assert message in proc.stderr
