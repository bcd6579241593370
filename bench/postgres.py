"""A real PostgreSQL for the tests and the benchmarks: ``initdb`` into a temporary folder, ``postgres`` on
127.0.0.1 on a free port, one database, stopped (and the folder removed) at the end. The tests' fixture
is ``tests/postgres.py``.

``initdb`` refuses to run as root, so as root the server runs as an unprivileged user (``postgres``,
which Debian's package creates, else ``nobody``) that owns the folder. The binaries are found through
``pg_config --bindir``, else in Debian's ``/usr/lib/postgresql/<version>/bin`` (the newest). ``stop(mode)``
and ``start()`` let a test kill the server under load (``immediate``: no shutdown checkpoint, as a crash)
and bring it back on the same data and port.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DEBIAN_ROOT = "/usr/lib/postgresql"
START_TIMEOUT_S = 30.0
DATABASE = "loadbench"


def bindir() -> Path | None:
    """Where initdb and postgres are (None: not installed)."""
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted((str(p) for p in Path(DEBIAN_ROOT).glob("*/bin")),
                         key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0, reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "postgres").is_file():
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


class PostgresServer:
    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.user = _run_as()
        self.folder = Path(tempfile.mkdtemp(prefix="loadbench-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        if self.user is not None:
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)

    @property
    def dsn(self) -> str:
        return f"postgresql://loadbench@127.0.0.1:{self.port}/{DATABASE}"

    def cmd(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        user = {} if self.user is None else {"user": self.user.pw_uid, "group": self.user.pw_gid}
        return subprocess.run(list(args), capture_output=True, check=True, cwd=self.folder, timeout=60,
                              **user, **kwargs)  # type: ignore[call-overload]

    def init(self) -> None:
        self.cmd(str(self.bin / "initdb"), "-D", str(self.data), "-U", "loadbench", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        self.start()
        self.cmd(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "loadbench", DATABASE)

    def start(self) -> None:
        """Start (again) on the same data and port; returns once it accepts connections."""
        user = {} if self.user is None else {"user": self.user.pw_uid, "group": self.user.pw_gid}
        log = (self.folder / "postgres.log").open("ab")
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", f"unix_socket_directories={self.folder}", "-c", "fsync=off", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.folder, **user)  # type: ignore[call-overload]
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            ready = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True, check=False)
            if ready.returncode == 0:
                return
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: " + (self.folder / "postgres.log").read_text()[-2000:])
            time.sleep(0.1)
        raise RuntimeError("postgres did not accept connections within 30 s")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown; ``immediate``: as a crash (recovery from the WAL at the next start)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.cmd(str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30")
        self.proc.wait(timeout=30)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    found = bindir()
    if found is None:
        # make test installs it (scripts/system-packages.sh): a missing server is a broken setup, not a skip
        raise RuntimeError("PostgreSQL is not installed: run scripts/system-packages.sh (Debian package postgresql)")
    server = PostgresServer(found)
    try:
        server.init()
        yield server
    finally:
        server.close()


_counter = iter(range(1_000_000))


def fresh_database(server: PostgresServer) -> str:
    """A new empty database on ``server``; its DSN."""
    name = f"t{os.getpid()}_{next(_counter)}"
    server.cmd(str(server.bin / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "loadbench", name)
    return f"postgresql://loadbench@127.0.0.1:{server.port}/{name}"
