"""A real inference engine beside the mock: llama.cpp's ``llama-server``, built here and started here.

Build: the llama-cpp-python source distribution (``pip download --no-binary``) vendors llama.cpp; only
the ``llama-server`` target is built, CPU-only, with CMake (Release, static, no network features, no
web UI download). It takes about 12 minutes on 2 free cores, so it happens once per machine: the
binary is cached outside the repository under ``cache_root()/llama-server-<key>/``, keyed by the
package version and the CPU (the build is tuned for the CPU it runs on, ``GGML_NATIVE``, so a cache
copied to another CPU model builds anew instead of crashing on an instruction it lacks). A file lock
makes concurrent processes (pytest-xdist workers, a bench beside a test session) build it once: the
others wait. A build that cannot happen raises ``EngineUnavailable`` saying why (missing compiler,
no package index, the build's own error with the log's tail); nothing skips silently.

Serve: ``start_engine`` runs it on 127.0.0.1 with a fixed number of slots (``-np``), continuous
batching, ``/metrics`` on, the prompt cache on or off, optionally pinned to one core, and returns
once ``/health`` answers 200. llama-server cannot bind port 0, so a free port is picked and the
start retried if another process took it meanwhile. Stopped by its PID (``ServerProcess.stop``).

    python -m bench.engine build        # build (or find) the binary; prints its path
    python -m bench.engine serve -np 4  # serve the random model until Ctrl-C (a manual target)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.engine_model import ModelSpec, cached_model
from loadbench.procs import ServerProcess

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_NATIVE=ON",
               "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_APP=OFF",
               "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",  # no web UI, no download at build
               "-DLLAMA_OPENSSL=OFF")  # plain HTTP on 127.0.0.1 only; no libssl-dev needed
BUILD_TIMEOUT_S = 3600.0  # one build, or the wait for another process's build
APT_PACKAGES = ("cmake", "g++", "make")  # what the build needs beyond Python (ninja is used when present)
MODEL_NAME = "loadbench-engine"  # the server's alias: /v1/models lists it and every answer names it
START_TIMEOUT_S = 60.0
PORT_ATTEMPTS = 5


class EngineUnavailable(RuntimeError):
    """The engine cannot be built or started here; the message says why and what to do."""


def cache_root() -> Path:
    """``$LOADBENCH_ENGINE_CACHE``, else ``$XDG_CACHE_HOME/loadbench``, else ``~/.cache/loadbench``."""
    explicit = os.environ.get("LOADBENCH_ENGINE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "loadbench"


def build_key() -> str:
    """The package version and the CPU the native build is tuned for."""
    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                break
    cpu = hashlib.sha256(f"{platform.machine()} {flags or platform.processor()}".encode()).hexdigest()[:8]
    return f"{LLAMA_CPP_PYTHON_VERSION}-{platform.machine()}-{cpu}"


def binary_path() -> Path:
    return cache_root() / f"llama-server-{build_key()}" / "llama-server"


@contextlib.contextmanager
def _file_lock(path: Path, timeout_s: float, waiting: str) -> Iterator[None]:
    """An exclusive lock between processes, waited for at most ``timeout_s`` (polled: bounded)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        deadline = time.monotonic() + timeout_s
        said = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EngineUnavailable(f"{waiting} took longer than {timeout_s:.0f} s (lock {path})") from None
                if not said:
                    print(f"engine: waiting for {waiting} in another process (lock {path})", file=sys.stderr)
                    said = True
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_built(timeout_s: float = BUILD_TIMEOUT_S) -> Path:
    """The cached ``llama-server`` binary, built first if this machine has none."""
    binary = binary_path()
    if binary.exists():
        return binary
    folder = binary.parent
    failed = folder.with_name(folder.name + ".failed")
    began_s = time.time()
    with _file_lock(folder.with_name(folder.name + ".lock"), timeout_s, "the llama-server build"):
        if binary.exists():
            return binary  # another process built it while this one waited
        if failed.exists() and failed.stat().st_mtime >= began_s:
            # another process failed while this one waited: the same build would fail the same way
            raise EngineUnavailable(failed.read_text())
        try:
            _build(folder)
        except EngineUnavailable as exc:
            failed.write_text(str(exc))
            raise
    return binary


def _missing_tools() -> list[str]:
    missing = [t for t in ("cmake",) if shutil.which(t) is None]
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        missing.append("a C++ compiler")
    if not any(shutil.which(m) for m in ("ninja", "make")):
        missing.append("make or ninja")
    return missing


def _run_logged(cmd: list[str], log: Path, what: str, cwd: Path | None = None) -> None:
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        try:
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, timeout=BUILD_TIMEOUT_S,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise EngineUnavailable(f"cannot build llama-server: {what} took over {BUILD_TIMEOUT_S:.0f} s "
                                    f"(log: {log})") from None
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise EngineUnavailable(f"cannot build llama-server: {what} failed (exit {done.returncode}); "
                                f"the end of {log}:\n{tail}")


def _build(folder: Path) -> None:
    missing = _missing_tools()
    if missing:
        raise EngineUnavailable(f"cannot build llama-server: {', '.join(missing)} not found on PATH "
                                f"(on Debian/Ubuntu: apt-get install {' '.join(APT_PACKAGES)})")
    root = folder.parent
    log = folder.with_name(folder.name + ".build.log")
    log.write_text(f"llama-server build {build_key()} started {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    print(f"engine: building llama-server {build_key()} (about 12 minutes on 2 cores, once per machine; "
          f"log: {log})", file=sys.stderr)
    started = time.monotonic()
    for stale in root.glob("llama-server-build-*"):  # left by a build that was killed (this one holds the lock)
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="llama-server-build-", dir=root) as tmp:
        work = Path(tmp)
        _run_logged([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                     f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(work)], log,
                    "downloading the llama-cpp-python source distribution from the package index")
        sdists = list(work.glob("llama_cpp_python-*.tar.gz"))
        if not sdists:
            raise EngineUnavailable(f"cannot build llama-server: pip saved no source distribution (log: {log})")
        with tarfile.open(sdists[0]) as tar:
            tar.extractall(work, filter="data")
        src = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"), None)
        if src is None or not (src / "tools" / "server").is_dir():
            raise EngineUnavailable(f"cannot build llama-server: {sdists[0].name} has no vendor/llama.cpp/tools/server")
        build = work / "build"
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        nice = ["nice", "-n", "10"] if shutil.which("nice") else []  # a build must not starve the tests
        _run_logged([*nice, "cmake", "-S", str(src), "-B", str(build), *generator, *CMAKE_FLAGS], log,
                    "cmake configure")
        _run_logged([*nice, "cmake", "--build", str(build), "--target", "llama-server", "-j",
                     str(os.cpu_count() or 2)], log, "cmake --build --target llama-server")
        built = next(iter(build.glob("bin/llama-server")), None)
        if built is None:
            raise EngineUnavailable(f"cannot build llama-server: the build produced no bin/llama-server (log: {log})")
        staged = root / f".{folder.name}.{os.getpid()}"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        shutil.copy2(built, staged / "llama-server")
        (staged / "build.json").write_text(json.dumps({
            "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION, "key": build_key(), "cmake_flags": list(CMAKE_FLAGS),
            "build_s": round(time.monotonic() - started, 1), "cpus": os.cpu_count(),
            "built_unix_s": round(time.time())}, indent=2) + "\n")
        staged.rename(folder)  # atomic: the binary appears complete or not at all
    print(f"engine: llama-server built in {time.monotonic() - started:.0f} s: {folder}", file=sys.stderr)


def start_background_build() -> subprocess.Popen[bytes] | None:
    """Start the build in a detached process if this machine has none (it takes minutes, so a test
    session starts it at collection and waits for it only when a test needs the engine)."""
    if binary_path().exists():
        return None
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "background-build.log", "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bench.engine", "build"], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=Path(__file__).resolve().parent.parent)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    slots: int = 4  # -np: requests decoded at once; more wait in the engine's queue
    context_per_slot_tokens: int = 2048
    prompt_cache: bool = False
    cpu: int | None = None  # pin to this core (taskset) where timing matters
    threads: int = 1
    model: ModelSpec = field(default_factory=ModelSpec)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engine_command(binary: Path, model: Path, port: int, cfg: EngineConfig) -> list[str]:
    cmd = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "--alias", MODEL_NAME,
           "-np", str(cfg.slots), "-c", str(cfg.slots * cfg.context_per_slot_tokens), "--cont-batching",
           "--metrics", "-t", str(cfg.threads), "-tb", str(cfg.threads), "--no-webui", "--no-warmup",
           "--cache-prompt" if cfg.prompt_cache else "--no-cache-prompt"]
    if not cfg.prompt_cache:
        cmd += ["--cache-ram", "0"]  # no host-memory prompt cache either
    if cfg.cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cfg.cpu), *cmd]  # taskset execs: the PID is the server's
    return cmd


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_engine(cfg: EngineConfig, log_dir: Path) -> ServerProcess:
    """Start llama-server (building it first if needed) and return once it answers ``/health``."""
    binary = ensure_built()
    model = cached_model(cfg.model, cache_root())
    log_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(PORT_ATTEMPTS):
        port = free_port()
        log = log_dir / f"llama-server-{port}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(engine_command(binary, model, port, cfg), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True, text=True)
        server = ServerProcess(proc=proc, url=f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if _healthy(server.url):
                return server
            time.sleep(0.1)
        server.stop()
        text = log.read_text(errors="replace")
        if "bind" in text.lower() and attempt + 1 < PORT_ATTEMPTS:
            continue  # another process took the port between the probe and the bind
        tail = "\n".join(text.splitlines()[-15:])
        raise EngineUnavailable(f"llama-server did not become healthy within {START_TIMEOUT_S:.0f} s "
                                f"(exit {proc.returncode}); the end of {log}:\n{tail}")
    raise EngineUnavailable(f"llama-server found no free port in {PORT_ATTEMPTS} attempts")


def engine_metrics(url: str) -> dict[str, float]:
    """The engine's own Prometheus figures (``llamacpp:*``), by name."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name.strip()] = float(value)
    return out


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """What the engine's own gauges showed over a time span: the requests it was decoding (at most
    its slots) and the requests waiting for a slot (``deferred``)."""

    scrapes: int
    processing_max: float
    deferred_max: float
    deferred_mean: float

    def to_json(self) -> dict[str, float]:
        return {"scrapes": self.scrapes, "processing_max": self.processing_max,
                "deferred_max": self.deferred_max, "deferred_mean": round(self.deferred_mean, 3)}


class QueueWatch:
    """Scrapes the engine's ``/metrics`` every ``period_s`` in a thread (``requests_processing`` and
    ``requests_deferred`` are gauges: only a scrape during the load sees a queue)."""

    def __init__(self, url: str, period_s: float = 0.1, max_scrapes: int = 100_000) -> None:
        self.url = url
        self.period_s = period_s
        self.max_scrapes = max_scrapes
        self.rows: list[tuple[float, float, float]] = []  # (unix s, processing, deferred)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> QueueWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set() and len(self.rows) < self.max_scrapes:
            with contextlib.suppress(OSError, ValueError):
                m = engine_metrics(self.url)
                self.rows.append((time.time(), m.get("llamacpp:requests_processing", 0.0),
                                  m.get("llamacpp:requests_deferred", 0.0)))
            self._stop.wait(self.period_s)

    def between(self, start_unix_s: float, end_unix_s: float) -> QueueFigures:
        rows = [r for r in self.rows if start_unix_s <= r[0] <= end_unix_s]
        if not rows:
            return QueueFigures(0, 0.0, 0.0, 0.0)
        return QueueFigures(len(rows), max(r[1] for r in rows), max(r[2] for r in rows),
                            sum(r[2] for r in rows) / len(rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build (or find) the cached llama-server; print its path")
    serve = sub.add_parser("serve", help="serve the random model on 127.0.0.1 until Ctrl-C")
    serve.add_argument("-np", "--slots", type=int, default=4)
    serve.add_argument("--cpu", type=int)
    serve.add_argument("--prompt-cache", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            print(ensure_built())
            return 0
        def stop_serving(signum: int, frame: object) -> None:
            raise KeyboardInterrupt  # SIGTERM too stops the engine by its PID before exiting

        signal.signal(signal.SIGTERM, stop_serving)
        with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp:
            server = start_engine(EngineConfig(slots=args.slots, cpu=args.cpu, prompt_cache=args.prompt_cache),
                                  Path(tmp))
            print(f"llama-server listening on {server.base_url} (model {MODEL_NAME}, {args.slots} slots)")
            try:
                server.proc.wait()
            except KeyboardInterrupt:
                pass
            finally:
                server.stop()
    except EngineUnavailable as exc:
        print(f"engine: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
