"""``python -m loadbench.workers master|worker ...``: the Locust processes of a run."""

from __future__ import annotations

# Locust must patch the process before anything else imports socket/ssl.
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["web"]:  # the master with Locust's web UI: its own options (loadbench.workers.web)
        from loadbench.workers import web

        return web.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m loadbench.workers")
    sub = parser.add_subparsers(dest="role", required=True)
    m = sub.add_parser("master")
    m.add_argument("--plan", type=Path, required=True)
    m.add_argument("--run-dir", type=Path, required=True)
    m.add_argument("--bind-host", default="127.0.0.1")
    m.add_argument("--bind-port", type=int, default=5557)
    m.add_argument("--expect-workers", type=int, default=1)
    m.add_argument("--wait-workers-s", type=float, default=60.0)
    m.add_argument("--parent-pid", type=int, help="stop the run when this process (the launcher) dies")
    m.add_argument("--prometheus-port", type=int, help="serve live Prometheus metrics on 127.0.0.1:PORT")
    w = sub.add_parser("worker")
    w.add_argument("--master-host", default="127.0.0.1")
    w.add_argument("--master-port", type=int, default=5557)
    w.add_argument("--master-pid", type=int, help="a local master: stop sending as soon as it is gone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if args.role == "master":
        from loadbench.workers import master

        return master.main(args.plan, args.run_dir, args.bind_host, args.bind_port,
                           args.expect_workers, args.wait_workers_s, args.parent_pid, args.prometheus_port)
    from loadbench.workers import worker

    return worker.main(args.master_host, args.master_port, args.master_pid)


if __name__ == "__main__":
    sys.exit(main())
