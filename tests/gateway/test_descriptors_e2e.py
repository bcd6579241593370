"""Open-file descriptors, tried as an attacker would: the gateway raises its soft limit to the hard one
at start, keeps its connection limit below what the descriptors allow, and a crowd of idle connections
makes new clients meet a 503 they can read, never a reset, until the idle timeout reclaims the crowd."""

from __future__ import annotations

import asyncio
import re
import resource
import socket
import time
from pathlib import Path

import aiohttp
import orjson
import pytest
import yaml

from loadbench.gateway.connections import REFUSED_HOLD_S
from loadbench.procs import ServerProcess, start_server
from tests.gateway.harness import CHAT, start_mock


def _gateway(servers: list[ServerProcess], tmp_path: Path, config: dict[str, object],
             open_files: tuple[int, int]) -> ServerProcess:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    gw = start_server(["gateway", "--config", str(path), "--port", "0"], open_files=open_files)
    servers.append(gw)
    return gw


def _open_files(pid: int) -> tuple[int, int]:
    found = re.search(r"Max open files\s+(\d+)\s+(\d+)", Path(f"/proc/{pid}/limits").read_text())
    assert found is not None
    return int(found.group(1)), int(found.group(2))


@pytest.mark.slow
def test_the_gateway_raises_its_soft_open_file_limit_to_the_hard_one(
        servers: list[ServerProcess], tmp_path: Path) -> None:
    mock = start_mock(servers)
    config = {"targets": [{"name": "a", "url": mock.base_url, "model": "m"}],
              "virtual_models": [{"name": "vm", "targets": [{"target": "a"}]}]}
    gw = _gateway(servers, tmp_path, config, (256, 4096))
    assert _open_files(gw.proc.pid) == (4096, 4096)


@pytest.mark.slow
def test_1100_idle_connections_under_a_1024_limit_get_503s_not_resets_until_the_idle_timeout(
        servers: list[ServerProcess], tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1400:
        pytest.fail(f"this test opens 1,100 sockets itself and needs a hard open-file limit >= 1400 (is {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    mock = start_mock(servers)
    idle_s = 4.0
    config = {"targets": [{"name": "a", "url": mock.base_url, "model": "m"}],
              "virtual_models": [{"name": "vm", "targets": [{"target": "a"}]}],
              "limits": {"max_connections": 5000, "idle_timeout_s": idle_s}}  # more than 1,024 descriptors allow
    gw = _gateway(servers, tmp_path, config, (1024, 1024))
    host, port = gw.url.removeprefix("http://").split(":")
    crowd: list[socket.socket] = []
    try:
        started = time.monotonic()
        for _ in range(1100):  # connected and silent, as an attacker's sockets are
            crowd.append(socket.create_connection((host, int(port)), timeout=5))

        async def one() -> tuple[int, dict[str, object]]:
            async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/chat/completions",
                                                            data=orjson.dumps(CHAT)) as r:
                return r.status, orjson.loads(await r.read())

        # the crowd beyond the limit was refused (and closed REFUSED_HOLD_S later, as its sockets stay
        # silent); a client arriving now, with the limit's worth of idle sockets still held open, is
        # refused in words, not reset
        time.sleep(REFUSED_HOLD_S + 0.5)
        status, body = asyncio.run(one())
        assert status == 503, body
        assert "too many open connections" in str(body)
        # the idle timeout reclaims the crowd; then the same client is served
        deadline = started + idle_s + 20
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                status, body = asyncio.run(one())
            except aiohttp.ClientError:
                pytest.fail("a client's connection was reset")
            if status == 200:
                break
        assert status == 200, body
        assert time.monotonic() - started >= idle_s - 0.5
    finally:
        for sock in crowd:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert gw.proc.poll() is None  # it lived through it
