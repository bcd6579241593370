"""Target resolution: ``--target``, or the embedded mock / gateway started for the run; the model probe."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from loadbench.config import FromEnv, Profile, Scenario, api_key, credentials, resolve_headers
from loadbench.config.credentials import Auth, credential, target_auth, target_dialect
from loadbench.config.profile import is_credential_header
from loadbench.errors import ConfigError, TargetError
from loadbench.plan.run import TargetSpec
from loadbench.procs import ServerProcess, start_server
from loadbench.protocol.dialect import LLMRequest
from loadbench.protocol.registry import DEFAULT, dialect
from loadbench.run.preflight import PREFLIGHT_TIMEOUT_S, preflight
from loadbench.run.request import RunRequest, say
from loadbench.workload.requests import RequestFactory

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
                headers: dict[str, str | FromEnv] | None = None, protocol: str | None = None,
                region: str | None = None, auth: Auth | None = None, embedded: bool = False) -> TargetSpec:
    """The run's target, checked before any request (protocol, credential, region, model path);
    ``embedded``: a mock loadbench starts itself, which needs no key."""
    wire = protocol or req.protocol
    where = "profile" if protocol else "command line"
    key_env = api_key_env or req.api_key_env
    cred = credential(wire, base_url, key_env, auth)
    region = credentials.region_of(region or req.region) if cred.auth == credentials.AWS else None
    if model is None and wire != DEFAULT:
        raise ConfigError(where, f"targets[{name}].model", f"the {wire} protocol needs the model named",
                          "pass --model (or set model: in the profile)")
    credentials.check_target(where=where, name=name, protocol=wire, url=base_url, model=model, cred=cred,
                             region=region, require_secret=not embedded)
    key = (api_key(key_env, path="profile", field=f"targets[{name}].api_key_env") if api_key_env
           else api_key(key_env)) if key_env else None
    if model is None:
        model = resolve_model(base_url, key)
    return TargetSpec(url=base_url, model=model, name=name, api_key_env=cred.env, protocol=wire, region=region,
                      auth=cred.auth,
                      include_usage=profile.include_usage if include_usage is None else include_usage,
                      headers=resolve_headers(dict(headers or {}), f"targets[{name}].options"),
                      secret_headers=[h for h, v in (headers or {}).items()
                                      if isinstance(v, FromEnv) or is_credential_header(h)])


@dataclass(frozen=True, slots=True)
class OneRequest:
    """One request outside the load (pre-flight, calibration, the ITL probe), ready to send: written in
    the target's protocol, its key presented, signed where the protocol signs."""

    url: str
    headers: dict[str, str]
    body: bytes


def one_request(target: TargetSpec, request: LLMRequest, **changes: Any) -> OneRequest:
    """``request`` with ``changes`` (e.g. ``max_tokens=1, stream=False``) as the target takes it."""
    wire, _ = target_dialect(target.protocol, target.model)
    changed = replace(request, **changes)
    written = wire.request(changed)
    auth = target_auth(target)
    url = target.url + written.path
    headers = auth.headers(wire, stream=changed.stream, extra=target.headers)
    return OneRequest(url, auth.sign(url, headers, written.body), written.body)


def run_factory(scenario: Scenario, target: TargetSpec, *, stream: bool, seed: int,
                prompt_scale: float = 1.0) -> RequestFactory:
    """A request stream of the run's kind outside the load (no usage asked of a stream)."""
    wire, model = target_dialect(target.protocol, target.model)
    return RequestFactory(scenario, model=model, stream=stream, include_usage=False, seed=seed,
                          prompt_scale=prompt_scale, wire=wire)


def check_target(req: RunRequest, profile: Profile, scenario: Scenario, target: TargetSpec) -> None:
    """One request of the run's own kind, before anything is written or started (see run.preflight)."""
    spec = run_factory(scenario, target, stream=False, seed=profile.seed).next()
    assert spec.request is not None
    one = one_request(target, spec.request, max_tokens=1, stream=False)
    result = preflight(one.url, one.body, one.headers, min(profile.timeout_s, PREFLIGHT_TIMEOUT_S),
                       target_dialect(target.protocol, target.model)[0])
    if result.status != 200:
        say(req, f"note: the pre-flight request answered {result.status or 'nothing'} ({result.message}); "
                 "going ahead, the run measures it")


def single_target(req: RunRequest, profile: Profile, servers: list[ServerProcess]) -> TargetSpec:
    """``--target``, or the embedded mock / gateway (appended to ``servers`` for the caller to stop)."""
    if req.target is not None:
        return target_spec(req, profile, req.target.rstrip("/"), req.model or profile.model)
    if req.embedded == "gateway":
        if req.protocol != DEFAULT:
            raise ConfigError("command line", "--protocol", f"the embedded gateway speaks {DEFAULT}, not "
                              f"{req.protocol}", "drop --embedded gateway, or give --target")
        started, base_url = _start_embedded_gateway(req, profile)
        servers.extend(started)
        return target_spec(req, profile, base_url, req.model or EMBEDDED_GATEWAY_MODEL)
    protocol = ["--protocol", req.protocol] if req.protocol != DEFAULT else []
    mock = start_server(["mock", "--port", "0", "--seed", str(profile.seed), *protocol, *req.mock_args])
    servers.append(mock)
    base_url = mock_base_url(mock.base_url, req.protocol)
    say(req, f"loadbench: no --target given: started the embedded mock upstream at {base_url}")
    return target_spec(req, profile, base_url, req.model or profile.model or DEFAULT_MOCK_MODEL, embedded=True)


def mock_base_url(openai_base_url: str, protocol: str) -> str:
    """The base URL of a mock speaking ``protocol``: its routes are the provider's own paths from the
    host (``server_routes``), and the dialect's client paths are relative to its base, so the base is
    what the route adds before the client path (OpenAI's ``/v1``)."""
    wire = dialect(protocol)
    root = openai_base_url.rstrip("/").removesuffix("/v1")
    route = wire.server_routes[0][1] if wire.server_routes else ""
    kind_path = wire.data.paths.get("chat", "")
    cut = kind_path.split("{", 1)[0] if "{" in kind_path else kind_path
    prefix = route.split("{", 1)[0] if "{" in route else route
    at = prefix.find(cut) if cut else -1
    return root + (prefix[:at] if at >= 0 else "")


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
