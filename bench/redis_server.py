"""A real ``redis-server`` (Debian's package, installed by scripts/system-packages.sh) for the tests and
the benchmarks: one process on 127.0.0.1, a free port, a folder of the caller's, no snapshots
(``appendonly=True`` keeps an AOF, for a test that restarts it and needs its data back). ``kill`` /
``start`` stop it hard and bring it back on the same port, as an outage would; ``pause`` / ``resume``
make it stop answering without closing a connection."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, folder: Path, appendonly: bool = False) -> None:
        self.folder = folder
        self.appendonly = appendonly
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2.0, decode_responses=True)

    def start(self, cpu: int | None = None) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: run scripts/system-packages.sh (Debian package redis-server)"
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--daemonize", "no", "--loglevel", "warning"]
        if self.appendonly:
            args += ["--appendfsync", "always"]
        if cpu is not None:
            args = ["taskset", "-c", str(cpu), *args]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} on port {self.port}")
            try:
                if self.client().ping():
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_S} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save, connections reset."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a Redis that is slow, not down)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused server would not hear the SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
