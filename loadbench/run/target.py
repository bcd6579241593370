"""Target resolution: ``--target``, or the embedded mock / gateway started for the run; the model probe."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import orjson

from loadbench.config import FromEnv, Profile, Scenario, api_key, env_value, resolve_headers
from loadbench.config.profile import is_credential_header
from loadbench.errors import TargetError
from loadbench.plan.run import TargetSpec
from loadbench.procs import ServerProcess, start_server
from loadbench.protocol.registry import DEFAULT, dialect
from loadbench.run.preflight import PREFLIGHT_TIMEOUT_S, preflight, preflight_body
from loadbench.run.request import RunRequest, say

DEFAULT_MOCK_MODEL = "mock-model"


def resolve_model(base_url: str, api_key: str | None = None, timeout_s: float = 5.0) -> str:
    """The first model the target lists (GET /models)."""
    wire = dialect(DEFAULT)
    request = urllib.request.Request(wire.url(base_url, "models", api_key=api_key),
                                     headers=wire.auth(api_key))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            data = orjson.loads(resp.read())
        return str(data["data"][0]["id"])
    except Exception as exc:
        hint = ("the URL should end in /v1 (try http://HOST:PORT/v1)" if not base_url.rstrip("/").endswith("/v1")
                else "pass --model")
        raise TargetError(f"could not list models at {base_url}/models ({exc}); {hint}") from exc


def target_spec(req: RunRequest, profile: Profile, base_url: str, model: str | None,
                 name: str = "default", api_key_env: str | None = None, include_usage: bool | None = None,
                 headers: dict[str, str | FromEnv] | None = None) -> TargetSpec:
    key_env = api_key_env or req.api_key_env
    key = (api_key(key_env, path="profile", field=f"targets[{name}].api_key_env") if api_key_env
           else api_key(key_env))
    if model is None:
        model = resolve_model(base_url, key)
    return TargetSpec(url=base_url, model=model, name=name, api_key_env=key_env,
                      include_usage=profile.include_usage if include_usage is None else include_usage,
                      headers=resolve_headers(dict(headers or {}), f"targets[{name}].options"),
                      secret_headers=[h for h, v in (headers or {}).items()
                                      if isinstance(v, FromEnv) or is_credential_header(h)])


def request_headers(target: TargetSpec) -> dict[str, str]:
    """The headers every request of the run carries (the key read here, never stored)."""
    key = env_value(target.api_key_env) if target.api_key_env else None
    return dialect(DEFAULT).headers(key, stream=False, extra=target.headers)


def check_target(req: RunRequest, profile: Profile, scenario: Scenario, target: TargetSpec) -> None:
    """One request of the run's own kind, before anything is written or started (see run.preflight)."""
    from loadbench.workload.requests import RequestFactory

    spec = RequestFactory(scenario, model=target.model, stream=False, include_usage=False,
                          seed=profile.seed).next()
    result = preflight(target.url + spec.path, preflight_body(spec.body), request_headers(target),
                       min(profile.timeout_s, PREFLIGHT_TIMEOUT_S))
    if result.status != 200:
        say(req, f"note: the pre-flight request answered {result.status or 'nothing'} ({result.message}); "
                 "going ahead, the run measures it")


def single_target(req: RunRequest, profile: Profile, servers: list[ServerProcess]) -> TargetSpec:
    """``--target``, or the embedded mock / gateway (appended to ``servers`` for the caller to stop)."""
    if req.target is not None:
        return target_spec(req, profile, req.target.rstrip("/"), req.model or profile.model)
    if req.embedded == "gateway":
        started, base_url = _start_embedded_gateway(req, profile)
        servers.extend(started)
        return target_spec(req, profile, base_url, req.model or EMBEDDED_GATEWAY_MODEL)
    mock = start_server(["mock", "--port", "0", "--seed", str(profile.seed), *req.mock_args])
    servers.append(mock)
    say(req, f"loadbench: no --target given: started the embedded mock upstream at {mock.base_url}")
    return target_spec(req, profile, mock.base_url, req.model or profile.model or DEFAULT_MOCK_MODEL)


EMBEDDED_GATEWAY_MODEL = "demo"
# Two mock upstreams with different speeds behind a weighted virtual model: the run's per-target
# breakdown shows the split and each target's own timing.


_EMBEDDED_MOCKS = (("fast", 80, ("--ttft-ms", "50", "--itl-ms", "10")),
                   ("slow", 20, ("--ttft-ms", "120", "--itl-ms", "20")))


def _start_embedded_gateway(req: RunRequest, profile: Profile) -> tuple[list[ServerProcess], str]:
    import tempfile

    import yaml

    servers: list[ServerProcess] = []
    try:
        targets, refs = [], []
        for name, weight, args in _EMBEDDED_MOCKS:
            mock = start_server(["mock", "--port", "0", "--seed", str(profile.seed), *args, *req.mock_args])
            servers.append(mock)
            targets.append({"name": name, "url": mock.base_url, "model": DEFAULT_MOCK_MODEL, "max_connections": 1024})
            refs.append({"target": name, "weight": weight})
        config = {"targets": targets,
                  "virtual_models": [{"name": EMBEDDED_GATEWAY_MODEL, "routing": "weight", "targets": refs}]}
        cfg = Path(tempfile.mkdtemp(prefix="loadbench-gateway-")) / "gateway.yaml"
        cfg.write_text(yaml.safe_dump(config, sort_keys=False))
        gateway = start_server(["gateway", "--config", str(cfg), "--port", "0"])
        servers.append(gateway)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    say(req, f"loadbench: no --target given: started the embedded gateway at {gateway.base_url} in front of "
              + ", ".join(f"mock '{n}' ({w}%: {' '.join(a)})" for n, w, a in _EMBEDDED_MOCKS))
    return servers, gateway.base_url
