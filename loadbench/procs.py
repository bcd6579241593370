"""Start a loadbench server (mock, gateway) as a subprocess and wait for its listening line.

Servers print exactly one line ``loadbench <what> listening on http://HOST:PORT`` once bound,
so callers can start them on port 0 and learn the port.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from loadbench.errors import TargetError

_LISTEN_RE = re.compile(r"loadbench (\w+) listening on (http://[^\s]+)")


@dataclass(slots=True)
class ServerProcess:
    proc: subprocess.Popen[str]
    url: str  # http://HOST:PORT (no /v1)
    output: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """OpenAI base URL (…/v1)."""
        return self.url + "/v1"

    def stop(self, timeout_s: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)
        return self.proc.returncode


def start_server(args: Sequence[str], *, timeout_s: float = 30.0, env: dict[str, str] | None = None,
                 cpu: int | None = None, open_files: tuple[int, int] | None = None) -> ServerProcess:
    """Run ``python -m loadbench <args>`` and return once it prints its listening line.

    ``cpu`` pins the process to one core (benchmarks); ``open_files`` starts it under this (soft, hard)
    open-file limit (util-linux's ``prlimit``), as a host with that limit would.
    """
    cmd = [sys.executable, "-m", "loadbench", *args]
    if open_files is not None:
        cmd = ["prlimit", f"--nofile={open_files[0]}:{open_files[1]}", *cmd]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    full_env = dict(os.environ if env is None else env)
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=full_env, start_new_session=True)
    assert proc.stdout is not None
    output: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if len(output) < 2000:
                output.append(line.rstrip("\n"))
            if not found:
                m = _LISTEN_RE.search(line)
                if m:
                    found.append(m.group(2))
                    ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not ready.wait(0.05):
        if time.monotonic() > deadline:
            break
    if not found:
        with contextlib.suppress(Exception):
            proc.kill()
        raise TargetError(f"server {' '.join(args[:1])} did not start: " + " | ".join(output[-20:]))
    return ServerProcess(proc=proc, url=found[0].rstrip("/"), output=output)


@contextlib.contextmanager
def running_server(args: Sequence[str], **kwargs: object) -> Iterator[ServerProcess]:
    server = start_server(args, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
