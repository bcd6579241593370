"""``loadbench run --web``: the run's Locust master with Locust's own web UI, one run after another.

Locust's extension points only: the loadbench fields are parser arguments ``include_in_web_ui``
(loadbench.workers.web_form declares them), the start button's ``POST /swarm`` is answered here
(validated like ``loadbench run``; an invalid field is the page's error message and nothing is sent),
and ``web_ui.app`` gets the loadbench routes: the live data (``/loadbench/live.json``, fed from the
master's merged HDR interval histograms), the panel's assets (served from the installed package, no
CDN) and each run's folder (``/loadbench/runs/<run id>/report.html``). Each start gets its own run
folder, manifest, summary and report, exactly as a headless run.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
import orjson
from flask import Response, jsonify, request, send_from_directory
from locust import events
from locust.argument_parser import LocustArgumentParser, get_parser
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner

from loadbench.config import env_value
from loadbench.errors import LoadbenchError
from loadbench.metrics.records import Summary
from loadbench.plan.run import RunPlan
from loadbench.results import run_dir as rd
from loadbench.results.manifest import Manifest, write_manifest
from loadbench.workers import messages as msg
from loadbench.workers.master import Master, new_runner
from loadbench.workers.watch import parent_gone, watch
from loadbench.workers.web_form import Prepared, WebDefaults, fields, prepare

STATIC_DIR = Path(__file__).with_name("web_static")
PANEL_TAGS = ('<link rel="stylesheet" href="./loadbench/static/panel.css">'
              '<script defer src="./loadbench/static/panel.js"></script>')
PLAN_FILE = "plan.json"
TAB_KEY = "loadbench"
# Locust's own extension point for a tab: a table whose rows ride on /stats/requests (extended_stats)
_COLUMNS = (("name", "figure (HDR; charts below)"), ("p50", "last interval P50"), ("p90", "P90"),
            ("p99", "P99"), ("run_p50", "run so far P50"), ("run_p90", "P90"), ("run_p99", "P99"),
            ("run_count", "count"))
TAB = {"extended_tabs": [{"title": "loadbench", "key": TAB_KEY}],
       "extended_tables": [{"key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in _COLUMNS]}]}
WAIT_WORKERS_S = 10.0


@dataclass(frozen=True, slots=True)
class RunResults:
    """What a finished run's summary adds to the live charts: sessions by turn index (where prefix
    caching shows) and a trace replay's fidelity, as the console and summary.md word them."""

    sessions: str | None = None
    turn_headers: tuple[str, ...] = ()
    turn_rows: tuple[tuple[str, ...], ...] = ()
    replay: str | None = None

    @classmethod
    def of(cls, summary: Summary) -> RunResults:
        from loadbench.report.tables import replay_line, sessions_line, turn_table

        headers, rows = turn_table(summary)
        return cls(sessions=sessions_line(summary), turn_headers=tuple(headers) if rows else (),
                   turn_rows=tuple(tuple(r) for r in rows), replay=replay_line(summary))

    def to_json(self) -> dict[str, Any]:
        return {"sessions": self.sessions, "turn_headers": list(self.turn_headers),
                "turn_rows": [list(r) for r in self.turn_rows], "replay": self.replay}


@dataclass(frozen=True, slots=True)
class RunView:
    """One run started from the page, as the page shows it."""

    run_id: str
    run_dir: str
    state: str  # running | summarising | done | failed
    exit_code: int | None = None
    stop_reason: str | None = None
    report: str | None = None  # URL path of report.html once it is built
    error: str | None = None
    results: RunResults | None = None  # once summarised

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_dir": self.run_dir, "state": self.state, "exit_code": self.exit_code,
                "stop_reason": self.stop_reason, "report": self.report, "error": self.error,
                "results": self.results.to_json() if self.results is not None else None}


class WebSession:
    def __init__(self, defaults: WebDefaults, runner: MasterRunner, expect_workers: int) -> None:
        self.defaults = defaults
        self.runner = runner
        self.expect = expect_workers
        self.current: Master | None = None
        self.runs: list[RunView] = []
        self.message: str | None = None  # the last start's error, shown in the panel too
        self.worker: gevent.Greenlet | None = None
        env = runner.environment
        env.events.worker_report.add_listener(self._on_report)
        msg.FINAL.on(runner, self._on_final)
        msg.DRAINED.on(runner, self._on_drained)
        msg.SPEC_ACK.on(runner, self._on_spec_ack)
        self.greeted: set[str] = set()  # workers that said HELLO: they live across runs
        msg.HELLO.on(runner, self._on_hello)

    # Locust allows one listener per message: these forward to the run that is going.
    def _on_report(self, client_id: str, data: dict[str, Any]) -> None:
        if self.current is not None:
            self.current._on_report(client_id, data)

    def _on_final(self, data: msg.WorkerData, node_id: str) -> None:
        if self.current is not None:
            self.current._on_final(data, node_id)

    def _on_drained(self, data: msg.Drained, node_id: str) -> None:
        if self.current is not None:
            self.current._on_drained(data, node_id)

    def _on_spec_ack(self, data: msg.Drained, node_id: str) -> None:
        if self.current is not None:
            self.current.spec_acked.add(node_id)

    def _on_hello(self, data: msg.Drained, node_id: str) -> None:
        if self.current is not None and self.busy:
            self.current.on_hello(node_id)  # adds it to self.greeted too: the run shares the set
        else:
            self.greeted.add(node_id)

    def connected(self) -> int:
        return sum(1 for c in self.runner.clients.all if c.state != STATE_MISSING)

    @property
    def busy(self) -> bool:
        return self.worker is not None and not self.worker.dead

    def start(self, form: dict[str, str]) -> tuple[bool, str]:
        """The start button: validate first (nothing is sent on an error), then run in the background."""
        if self.busy:
            return False, "a run is going: stop it first"
        connected = self.connected()
        if connected < self.expect:
            return False, f"waiting for workers: {connected} of {self.expect} connected"
        try:
            prepared = prepare(form, self.defaults)
        except LoadbenchError as exc:
            self.message = f"error: {exc}"
            return False, self.message
        self.message = None
        run_dir = rd.new_run_dir(Path(self.defaults.out_dir), prepared.name)
        self.worker = gevent.spawn(self._run, prepared, run_dir, connected)
        return True, f"loadbench run {run_dir.name} started (results in {run_dir})"

    def _run(self, prep: Prepared, run_dir: Path, workers: int) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        target = prep.target
        plan = RunPlan.build(run_dir.name, target, prep.profile, prep.scenario, workers)  # no calibration: scale 1
        write_manifest(run_dir, Manifest(
            run_id=run_dir.name, name=prep.name, command=("loadbench", "run", "--web"),
            target={"url": target.url, "model": target.model, "api_key_env": target.api_key_env},
            profile=prep.profile.dump_for_record(), scenario=prep.scenario.model_dump(mode="json"),
            start_unix_s=time.time(), prompt_scale=plan.workload.prompt_scale, load_plan=plan.load.to_json()))
        rd.write_json(run_dir / PLAN_FILE, plan.to_record())
        view = RunView(run_id=run_dir.name, run_dir=str(run_dir), state="running")
        self.runs.append(view)
        master = Master(plan, run_dir, "", 0, workers, WAIT_WORKERS_S, runner=self.runner, greeted=self.greeted)
        self.current = master
        env = self.runner.environment
        # Locust hands its host to every user it spawns; the users' paths already carry the base path
        env.host = urlsplit(target.url)._replace(path="", query="", fragment="").geturl()
        try:
            try:
                code = master.run()
            finally:
                env.host = target.url  # the next form starts from this run's target
            self._update(view, state="summarising", exit_code=int(code), stop_reason=master.stop_reason)
            report, results = _summarise(run_dir)
            self._update(view, state="done", report=f"./loadbench/runs/{run_dir.name}/{report}" if report else None,
                         results=results)
        except Exception as exc:  # the page must say what happened; the folder keeps what was measured
            self._update(view, state="failed", error=f"{type(exc).__name__}: {exc}")
            print(f"loadbench web: run {run_dir.name} failed: {exc}", file=sys.stderr, flush=True)

    def _update(self, view: RunView, **changes: Any) -> None:
        i = next(i for i, v in enumerate(self.runs) if v.run_id == view.run_id)
        self.runs[i] = replace(self.runs[i], **changes)

    def stop(self, reason: str, signal_name: str | None = None) -> None:
        """From the page (drained like the plan's end) or a signal (interrupted: a short drain)."""
        if self.current is not None and self.busy:
            self.current.request_stop(reason, interrupted=signal_name is not None, signal_name=signal_name)

    def live(self) -> dict[str, Any]:
        current = self.current
        return {"state": self.runs[-1].state if self.runs else "idle", "message": self.message,
                "workers": self.connected(), "expected_workers": self.expect,
                "locust_state": self.runner.state,
                "runs": [v.to_json() for v in self.runs],
                "live": current.live.to_json() if current is not None else None}

    def run_file(self, run_id: str, path: str) -> Response:
        known = {v.run_id: Path(v.run_dir) for v in self.runs}
        if run_id not in known:
            return Response("unknown run", status=404)
        return send_from_directory(known[run_id].resolve(), path)


def _summarise(run_dir: Path) -> tuple[str | None, RunResults]:
    """summary.* and report.* as after a headless run; the report's file name (None if it failed) and
    the summary's results for the page."""
    from loadbench.report import build_report
    from loadbench.report.summary_text import render_console, write_summary_files

    summary = write_summary_files(run_dir)
    print(render_console(summary), flush=True)
    results = RunResults.of(summary)
    try:
        files = build_report(run_dir)
    except Exception as exc:  # the measurements are already on disk: `loadbench report` rebuilds it
        print(f"warning: the report could not be built ({exc}); retry with: loadbench report {run_dir}", flush=True)
        return None, results
    html = [f for f in files if f.suffix == ".html"]
    return (html[0].relative_to(run_dir).as_posix() if html else None), results


def _add_form_fields(defaults: WebDefaults, scenarios: list[str], profiles: list[str]) -> None:
    @events.init_command_line_parser.add_listener
    def _(parser: LocustArgumentParser) -> None:
        for f in fields(defaults, scenarios, profiles):
            parser.add_argument(f"--lb-{f.name.replace('_', '-')}", dest=f.name, default=f.default, help=f.help,
                               choices=list(f.choices) if f.choices else None, include_in_web_ui=True)


def _basic_auth(app: Any, credentials: str) -> None:
    """HTTP basic auth on every page and route (``--web-auth-env``: a variable holding user:password)."""
    expected = "Basic " + base64.b64encode(credentials.encode()).decode()

    @app.before_request
    def check() -> Response | None:
        if hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            return None
        return Response("loadbench: sign in", status=401, headers={"WWW-Authenticate": 'Basic realm="loadbench"'})


def _routes(app: Any, session: WebSession) -> None:
    @app.before_request
    def swarm() -> Response | None:
        if request.method != "POST" or request.path.rstrip("/") not in ("/swarm", "/stop"):
            return None
        if request.path.rstrip("/") == "/stop":
            if not session.busy:
                return None  # nothing of ours is going: Locust's own stop
            # like the end of the plan: nothing new is sent, in-flight requests finish and are measured
            session.stop("stopped from the web page")
            return jsonify({"success": True, "message": "stopping: in-flight requests finish first"})
        ok, message = session.start(request.form.to_dict())
        return jsonify({"success": ok, "message": message, "host": session.runner.environment.host})

    @app.after_request
    def panel(resp: Response) -> Response:
        if request.path == "/" and resp.mimetype == "text/html" and not resp.direct_passthrough:
            html = resp.get_data(as_text=True)
            resp.set_data(html.replace("</body>", PANEL_TAGS + "</body>", 1))
        return resp

    @app.after_request
    def tab(resp: Response) -> Response:
        if request.path != "/stats/requests" or resp.mimetype != "application/json":
            return resp
        current = session.current
        rows = [{k: _cell(v) for k, v in row.items()} for row in current.live.rows()] if current else []
        resp.set_data(orjson.dumps({**orjson.loads(resp.get_data()), "extended_stats": [
            {"key": TAB_KEY, "data": rows}]}))
        return resp

    @app.route("/loadbench/live.json")
    def live() -> Response:
        return Response(orjson.dumps(session.live()), mimetype="application/json")

    @app.route("/loadbench/static/<path:name>")
    def static_file(name: str) -> Response:
        return send_from_directory(STATIC_DIR, name)

    @app.route("/loadbench/runs/<run_id>/<path:name>")
    def run_file(run_id: str, name: str) -> Response:
        return session.run_file(run_id, name)


def _cell(value: Any) -> Any:
    if value is None:
        return "–"
    return round(value, 2) if isinstance(value, float) else value


def _choices(folder: str) -> list[str]:
    root = Path(folder)
    return sorted(p.as_posix() for p in root.glob("*.yaml")) if root.is_dir() else []


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m loadbench.workers web")
    p.add_argument("--defaults", type=Path, required=True, help="WebDefaults JSON")
    p.add_argument("--bind-host", default="127.0.0.1")
    p.add_argument("--bind-port", type=int, default=5557)
    p.add_argument("--expect-workers", type=int, default=1)
    p.add_argument("--web-host", default="127.0.0.1")
    p.add_argument("--web-port", type=int, default=8089)
    p.add_argument("--web-auth-env", help="variable holding user:password for HTTP basic auth")
    p.add_argument("--prometheus-port", type=int)
    p.add_argument("--parent-pid", type=int)
    args = p.parse_args(argv)
    defaults = WebDefaults.from_json(rd.read_json(args.defaults))
    # Locust's page re-parses the command line for its extra fields: it must see only its own options.
    sys.argv = sys.argv[:1]
    _add_form_fields(defaults, _choices("scenarios"), _choices("profiles"))
    runner = new_runner(args.bind_host, args.bind_port)
    env = runner.environment
    env.host = defaults.target_url
    env.parsed_options = get_parser().parse_args(defaults.locust_args())
    session = WebSession(defaults, runner, args.expect_workers)
    web_ui = env.create_web_ui(host=args.web_host, port=args.web_port, delayed_start=True)
    web_ui.template_args.update(TAB)
    if args.web_auth_env:
        credentials = env_value(args.web_auth_env)
        if not credentials or ":" not in credentials:
            print(f"loadbench web: {args.web_auth_env} must hold user:password", file=sys.stderr, flush=True)
            return 2
        _basic_auth(web_ui.app, credentials)
    _routes(web_ui.app, session)
    web_ui.start()
    if args.prometheus_port is not None:
        from loadbench.metrics.prometheus import serve

        serve(args.prometheus_port, lambda: session.current.live_state() if session.current else None)
    quit_signal: list[str] = []

    def on_signal(name: str) -> None:
        quit_signal.append(name)
        session.stop(f"interrupted ({name})", name)

    gevent.signal_handler(signal.SIGTERM, on_signal, "SIGTERM")
    gevent.signal_handler(signal.SIGINT, on_signal, "SIGINT")
    if args.parent_pid is not None:
        watch(lambda: parent_gone(args.parent_pid), lambda: on_signal("launcher gone"))
    print(f"loadbench web UI on http://{args.web_host}:{args.web_port} (master tcp://{args.bind_host}:"
          f"{runner.master_bind_port})", flush=True)
    while not quit_signal:
        gevent.sleep(0.2)
        if runner.state in (STATE_RUNNING, STATE_SPAWNING) and not session.busy:
            runner.stop()  # only loadbench starts load here: a stray swarm is stopped
    if session.worker is not None:
        session.worker.join()
    runner.quit()
    web_ui.stop()
    return 0
