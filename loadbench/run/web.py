"""``loadbench run --web``: the target and the Locust processes for runs started from Locust's web page.

The inputs given on the command line are validated first (exit 2 before anything starts) and become
the form's initial values; the runs themselves are prepared and summarised by the master
(loadbench.workers.web), one folder per start. Ctrl-C stops the run that is going, writes its
folder and ends the page.
"""

from __future__ import annotations

import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loadbench import launcher
from loadbench.errors import ExitCode, InputError
from loadbench.procs import ServerProcess
from loadbench.results import run_dir as rd
from loadbench.run.inputs import auto_workers, load_inputs
from loadbench.run.request import RunRequest, say
from loadbench.run.target import single_target
from loadbench.workers.web_form import WebDefaults


@dataclass(frozen=True, slots=True)
class WebOptions:
    host: str = "127.0.0.1"
    port: int = 8089
    auth_env: str | None = None  # variable holding user:password (HTTP basic auth)

    def args(self) -> list[str]:
        return ["--web-host", self.host, "--web-port", str(self.port),
                *(("--web-auth-env", self.auth_env) if self.auth_env else ())]


def require_free_port(host: str, port: int, flag: str) -> None:
    """A port already taken fails here, before any server starts, not later inside the master."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise InputError(f"{flag}: {host}:{port} is not free ({exc.strerror}); pick another port") from None


def run_web(req: RunRequest, web: WebOptions) -> ExitCode:
    profile, _ = load_inputs(req)
    require_free_port(web.host, web.port, "--web-port")
    servers: list[ServerProcess] = []
    try:
        target = single_target(req, profile, servers)
        workers = req.workers or auto_workers(profile)
        defaults = WebDefaults(target_url=target.url, model=target.model, profile=str(req.profile_path or ""),
                               scenario=str(req.scenario_path or ""), out_dir=str(req.out_dir),
                               name=req.name, api_key_env=target.api_key_env,
                               include_usage=target.include_usage, users=profile.users,
                               ramp_up_s=profile.ramp_up_s, duration_s=profile.duration_s,
                               protocol=target.protocol, region=target.region, auth=target.auth)
        path = Path(tempfile.mkdtemp(prefix="loadbench-web-")) / "web.json"
        rd.write_json(path, defaults.to_json())
        extra = ["--prometheus-port", str(req.prometheus_port)] if req.prometheus_port is not None else []
        launch = launcher.start_web(path, local_workers=workers, web_args=[*web.args(), *extra],
                                    bind_host=req.master_bind_host, bind_port=req.master_port)
        say(req, f"loadbench: open http://{web.host}:{web.port} to start runs against {target.url} "
                  f"({workers} worker(s); each run writes its folder under {req.out_dir}); Ctrl-C to end")
        code = launcher.wait(launch)
    finally:
        for server in reversed(servers):
            server.stop()
    # Ending the page with Ctrl-C is how a web session ends: each run's own state is in its status.json.
    if code == 0:
        return ExitCode.OK
    return ExitCode(code) if code in ExitCode._value2member_map_ else ExitCode.INTERNAL
