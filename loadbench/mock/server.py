"""Run the mock: uvloop (asyncio if missing), N workers on one port, one listening line, signals.

The parent binds every listening socket before anything else happens, so a busy port fails at
once and port 0 resolves to one real port: with ``--workers N`` it opens N sockets with
SO_REUSEPORT on the same port (the kernel spreads connections across them) and forks one
worker per socket. It prints ``loadbench mock listening on http://HOST:PORT`` once every worker
serves, then waits; SIGTERM or SIGINT stops the workers and returns 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import multiprocessing
import multiprocessing.connection
import signal
import socket
import sys
from collections.abc import Callable

from aiohttp import web

from loadbench.errors import ExitCode, InputError
from loadbench.mock.app import create_app
from loadbench.mock.settings import MockSettings

_BACKLOG = 1024  # hundreds of clients connect at once when a load test starts
_SHUTDOWN_TIMEOUT_S = 1.0  # in-flight streams get this long after SIGTERM, then are cut


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships on every platform we run on
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def bind_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on one port (SO_REUSEPORT when more than one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"cannot resolve --host {host!r}: {exc}") from exc
    family, kind, proto, _, address = infos[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if count > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
            address = (address[0], sock.getsockname()[1], *address[2:])  # port 0 -> the real one
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc}") from exc
    return sockets


def listening_line(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"loadbench mock listening on http://{shown}:{port}"


async def serve(settings: MockSettings, sock: socket.socket, worker: int,
                on_ready: Callable[[], None]) -> None:
    """Serve on ``sock`` until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # No access log: a line per request would cost more than the request.
    runner = web.AppRunner(create_app(settings, worker), access_log=None,
                           shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        # SockSite listens again with its own backlog (default 128: SYNs beyond it are dropped).
        await web.SockSite(runner, sock, shutdown_timeout=_SHUTDOWN_TIMEOUT_S, backlog=_BACKLOG).start()
        # Start-up objects (modules, app, routes) never die: keep them out of every collection
        # so a full GC pass cannot stall the chunk schedule.
        gc.freeze()
        on_ready()
        await stop.wait()
    finally:
        await runner.cleanup()


def _run_loop(settings: MockSettings, sock: socket.socket, worker: int,
              on_ready: Callable[[], None]) -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(serve(settings, sock, worker, on_ready))


def _worker_main(settings: MockSettings, sockets: list[socket.socket], worker: int,
                 ready: multiprocessing.connection.Connection) -> None:
    for i, sock in enumerate(sockets):
        if i != worker:  # a socket nobody accepts on would swallow its share of connections
            sock.close()

    def on_ready() -> None:
        ready.send(worker)
        ready.close()

    _run_loop(settings, sockets[worker], worker, on_ready)


def _announce(host: str, port: int) -> None:
    print(listening_line(host, port), flush=True)


def run(settings: MockSettings) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code."""
    sockets = bind_sockets(settings.host, settings.port, settings.workers)
    port = sockets[0].getsockname()[1]
    settings = dataclasses.replace(settings, port=port)  # /mock/config shows the bound port
    if settings.workers == 1:
        _run_loop(settings, sockets[0], 0, lambda: _announce(settings.host, port))
        return ExitCode.OK
    return _run_workers(settings, sockets, port)


def _run_workers(settings: MockSettings, sockets: list[socket.socket], port: int) -> int:
    # fork: the sockets are inherited as they are, and nothing has started a thread yet.
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    procs = [ctx.Process(target=_worker_main, args=(settings, sockets, i, sender), daemon=True)
             for i in range(settings.workers)]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for proc in procs:
            proc.start()
        sender.close()
        for sock in sockets:
            sock.close()
        ready = 0
        while ready < len(procs) and not stopping:
            if receiver.poll(0.1):
                with contextlib.suppress(EOFError):
                    receiver.recv()
                    ready += 1
            if any(p.exitcode is not None for p in procs):
                break
        if ready == len(procs):
            _announce(settings.host, port)
        while not stopping and all(p.is_alive() for p in procs):
            multiprocessing.connection.wait([p.sentinel for p in procs], timeout=0.2)
        failed = not stopping
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the worker shuts down cleanly
        for proc in procs:
            proc.join(timeout=_SHUTDOWN_TIMEOUT_S + 5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if failed:
        print("loadbench mock: a worker exited unexpectedly", file=sys.stderr, flush=True)
        return ExitCode.INTERNAL
    return ExitCode.OK
