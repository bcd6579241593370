"""Signals sent to a gateway that is still starting: a reload is never fatal to any worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import psutil
import pytest
import yaml

from loadbench.procs import ServerProcess
from tests.conftest import REPO
from tests.gateway.harness import start_mock


async def _workers_answering(url: str, tries: int) -> set[str]:
    """The pids behind /metrics over new connections (SO_REUSEPORT spreads them over the workers)."""
    seen: set[str] = set()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for _ in range(tries):
            async with s.get(url + "/metrics") as r:
                text = await r.text()
            seen |= {line.split('worker="')[1].split('"')[0] for line in text.splitlines() if 'worker="' in line}
            if len(seen) >= 2:
                break
    return seen


@pytest.mark.slow
def test_sighup_while_the_workers_start_reloads_instead_of_killing_them(servers: list[ServerProcess],
                                                                         tmp_path: Path) -> None:
    mock = start_mock(servers)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"targets": [{"name": "m", "url": mock.base_url, "model": "mock-model"}],
                                    "virtual_models": [{"name": "vm", "targets": [{"target": "m"}]}]}))
    proc = subprocess.Popen([sys.executable, "-m", "loadbench", "gateway", "--config", str(path), "--port", "0",
                             "--workers", "2"], cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    kids: list[psutil.Process] = []
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 30
        while not kids and time.monotonic() < deadline:  # the second worker was just forked
            kids = parent.children()
            time.sleep(0.005)
        assert kids, "the gateway forked no worker"
        proc.send_signal(signal.SIGHUP)  # both workers are still setting up: no event loop handles it yet
        deadline = time.monotonic() + 30
        while not any("listening on" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        listening = [line for line in lines if "listening on" in line]
        assert listening, f"never listening (exit {proc.poll()}): " + "".join(lines)
        url = "http://" + listening[0].rsplit("http://", 1)[1].strip()
        time.sleep(1.0)
        assert proc.poll() is None, "".join(lines)
        children = parent.children()
        assert len(children) == 1 and children[0].is_running(), "".join(lines)
        assert children[0].status() != psutil.STATUS_ZOMBIE, "".join(lines)
        assert len(asyncio.run(_workers_answering(url, 200))) == 2
    finally:
        for kid in kids:  # also a worker whose parent is already gone
            with contextlib.suppress(psutil.NoSuchProcess):
                kid.terminate()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.join(timeout=10)
    said = "".join(lines)
    # every worker reloaded (one that got the signal just as its loop started may reload twice: harmless)
    reloaded = {line.split("gateway[")[1].split("]")[0] for line in said.splitlines() if "config reloaded" in line}
    assert reloaded == {str(proc.pid), str(children[0].pid)}, said
