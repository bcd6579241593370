"""Run the gateway: N worker processes, each with its own SO_REUSEPORT socket and uvloop loop.

The parent binds first (so ``--port 0`` resolves to one port), forks the other workers before any
event loop exists, prints the listening line and serves as worker 0. SIGHUP reloads the config in
every worker; SIGTERM/SIGINT stop them all, letting in-flight requests finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable

from aiohttp import web

from loadbench.gateway.app import create_app
from loadbench.gateway.config import GatewaySpec
from loadbench.gateway.connections import GuardedRunner, RejectLog, raise_descriptor_limit
from loadbench.gateway.state import Gateway

log = logging.getLogger("loadbench.gateway")
_SHUTDOWN_TIMEOUT_S = 10.0
BACKLOG = 2048  # bursts of new connections must not wait for a SYN retransmit (about 1 s of TTFT)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (Windows, exotic platforms)
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


# The first requests import code lazily (aiohttp client internals, codecs, ...): tens of thousands of
# long-lived objects that full collections then walk every time (measured: 15 ms gen-2 pauses at
# 350 req/s, which were the P99 TTFT outliers). Freezing again once traffic has warmed those paths
# keeps full collections short. Only a young collection runs first, so nothing stalls; cyclic garbage
# alive at that instant would stay uncollected, which is bounded by the in-flight requests.
_REFREEZE_AFTER_S = (5.0, 30.0, 120.0)
# Every request allocates a few hundred container objects and lives through several young
# collections at the default threshold (700), so each one's objects are walked by gen 0 and gen 1
# and pushed towards gen 2: 14-18 % of the gateway's CPU in collections (py-spy --native, 200
# non-streamed requests in flight). At 10,000 most of a finished request's objects are freed by
# reference counting before a collection sees them, and one young collection walks at most the
# threshold plus what is in flight (well under 1 ms). Measured: 45-55 us less user CPU per
# non-streamed request. Cyclic garbage is still collected, just in fewer, larger passes.
_GEN0_THRESHOLD = 10_000


# SIGHUP's default action ends the process. Until a worker's event loop handles it, one that arrives
# (an operator's reload right after start, forwarded by the parent to a worker still starting) is
# remembered here and the reload is done once the loop is up, instead of killing that worker.
_early_hup = False


def _defer_hup() -> None:
    def remember(_signum: int, _frame: object) -> None:
        global _early_hup
        _early_hup = True

    signal.signal(signal.SIGHUP, remember)


def _refreeze() -> None:
    gc.collect(0)
    gc.freeze()


async def _serve(sock: socket.socket, spec: GatewaySpec, config_path: str, announce: str | None,
                 on_signal: Callable[[int], None]) -> None:
    gw = Gateway(spec, config_path)
    await gw.start()
    app = create_app(gw)
    runner = GuardedRunner(app, spec.limits, RejectLog(), access_log=None, handler_cancellation=True,
                           shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    # SockSite listens again, with its own backlog (128 unless told)
    site = web.SockSite(runner, sock, shutdown_timeout=_SHUTDOWN_TIMEOUT_S, backlog=BACKLOG)
    await site.start()
    # Everything allocated so far (modules, pydantic schemas, the app) lives as long as the
    # process: move it out of the collector's reach so full collections stay short and rare.
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(_GEN0_THRESHOLD, gen1, gen2)
    loop = asyncio.get_running_loop()
    for delay_s in _REFREEZE_AFTER_S:
        loop.call_later(delay_s, _refreeze)
    stop = asyncio.Event()

    def on_term(signum: int) -> None:
        on_signal(signum)
        stop.set()

    def on_hup() -> None:
        on_signal(signal.SIGHUP)
        gw.reload()

    loop.add_signal_handler(signal.SIGTERM, on_term, signal.SIGTERM)
    loop.add_signal_handler(signal.SIGINT, on_term, signal.SIGINT)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    global _early_hup
    if _early_hup:  # a reload asked for while this worker was starting
        _early_hup = False
        on_hup()
    if announce:  # after the handlers: a signal sent on seeing this line is handled, never fatal
        print(announce, flush=True)
    await stop.wait()
    await runner.cleanup()


def _run_worker(sock: socket.socket, spec: GatewaySpec, config_path: str, announce: str | None,
                on_signal: Callable[[int], None]) -> None:
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(sock, spec, config_path, announce, on_signal))


def serve(spec: GatewaySpec, config_path: str, host: str, port: int, workers: int) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s gateway[%(process)d] %(levelname)s %(message)s")
    _defer_hup()  # inherited by the workers forked below
    raise_descriptor_limit()  # likewise
    sock = _bind(host, port, reuse_port=workers > 1)
    bound_port = sock.getsockname()[1]
    children: list[int] = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            sock.close()
            code = 0
            try:
                _run_worker(_bind(host, bound_port, True), spec, config_path, None, lambda _s: None)
            except BaseException:  # a child must never return into the parent's code
                log.exception("worker failed")
                code = 1
            os._exit(code)
        children.append(pid)

    def forward(signum: int) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    shown = f"[{host}]" if ":" in host else host
    try:
        _run_worker(sock, spec, config_path, f"loadbench gateway listening on http://{shown}:{bound_port}",
                    forward)
    finally:
        forward(signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


