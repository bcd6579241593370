"""A target's protocol and credentials: checked before any request, read from the environment only,
never written to the plan; Bedrock requests are signed one by one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loadbench.config import credentials, profile_from_dict
from loadbench.config.credentials import Credential, check_target, credential, target_auth, target_dialect
from loadbench.errors import ConfigError
from loadbench.plan.run import RunPlan, TargetSpec
from loadbench.protocol import registry
from loadbench.protocol.aws import AwsCredentials, chain_credentials
from loadbench.protocol.dialect import LLMRequest, Message
from loadbench.protocol.openai import OPENAI

PROTOCOLS = ("anthropic", "azure", "bedrock", "gemini", "openai-responses")


@pytest.fixture
def known(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every protocol name known to the registry (the checks here are about names, keys and regions)."""
    for name in PROTOCOLS:
        if name not in registry.names():
            monkeypatch.setitem(registry._DIALECTS, name, OPENAI)


def _check(protocol: str, *, model: str | None = "m", region: str | None = None, url: str = "http://127.0.0.1:1",
           api_key_env: str | None = None, require_secret: bool = True) -> None:
    check_target(where="profile", name="t", protocol=protocol, url=url, model=model,
                 cred=credential(protocol, url, api_key_env), region=region, require_secret=require_secret)


def test_an_unknown_protocol_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"targets\[t\]\.protocol.*unknown protocol 'grpc'.*openai"):
        _check("grpc")
    with pytest.raises(ConfigError, match=r"targets\[0\]\.protocol.*unknown protocol 'grpc'.*known protocols"):
        profile_from_dict({"targets": [{"name": "a", "url": "http://127.0.0.1:1/v1", "protocol": "grpc"}]})


@pytest.mark.usefixtures("known")
@pytest.mark.parametrize(("protocol", "variable"), [("anthropic", "ANTHROPIC_API_KEY"),
                                                    ("azure", "AZURE_OPENAI_API_KEY"),
                                                    ("gemini", "GEMINI_API_KEY")])
def test_a_missing_key_names_its_variable(protocol: str, variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigError, match=rf"api_key_env: {variable} is not set \(export {variable}="):
        _check(protocol)
    _check(protocol, require_secret=False)  # a mock loadbench starts itself takes no key
    monkeypatch.setenv(variable, "k")
    _check(protocol)
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ConfigError, match="MY_KEY is not set"):  # the target's own variable wins
        _check(protocol, api_key_env="MY_KEY")


def test_openai_sends_no_key_unless_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-be-sent")
    assert credential("openai", "http://x/v1", None) == Credential("key", None)
    _check("openai")


@pytest.mark.usefixtures("known")
def test_vertex_takes_a_bearer_token_and_gemini_needs_a_model_path(monkeypatch: pytest.MonkeyPatch) -> None:
    vertex = "https://us-central1-aiplatform.googleapis.com/v1"
    assert credential("gemini", vertex, None) == Credential("bearer", "GOOGLE_ACCESS_TOKEN")
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    for good in ("gemini-2.0-flash", "models/gemini-2.0-flash",
                 "projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash"):
        _check("gemini", model=good)
    for bad in ("gemini 2.0", "models/", "a/b/c", "https://x/models/g", "publishers/google/models/g"):
        with pytest.raises(ConfigError, match=r"targets\[t\]\.model: the gemini model .* not a model name.*Vertex"):
            _check("gemini", model=bad)


def test_a_vertex_model_path_speaks_vertex_paths() -> None:
    vertex = "projects/p1/locations/us-central1/publishers/google/models/gemini-2.0-flash"
    wire, model = target_dialect("gemini", vertex)
    assert model == "gemini-2.0-flash"
    assert wire.request(LLMRequest(model=model, messages=(Message("user", "hi"),), stream=True)).path == (
        "/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.0-flash"
        ":streamGenerateContent?alt=sse")
    wire, model = target_dialect("gemini", "models/gemini-2.0-flash")
    assert wire is registry.dialect("gemini") and model == "models/gemini-2.0-flash"


@pytest.mark.usefixtures("known")
def test_bedrock_needs_a_region_and_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION",
                 "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigError, match=r"targets\[t\]\.region: a bedrock target needs a region.*us-east-1"):
        _check("bedrock")
    with pytest.raises(ConfigError, match=r"no AWS credentials.*AWS_ACCESS_KEY_ID"):
        _check("bedrock", region="us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    _check("bedrock", region="us-east-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert credentials.region_of(None) == "eu-west-1"


def test_bedrock_requests_are_signed_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-value")
    auth = target_auth(TargetSpec(url="http://127.0.0.1:1", model="m", auth="aws", region="us-west-2"))
    url = "http://127.0.0.1:1/model/m/converse-stream"
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    first = auth.sign(url, {"Content-Type": "application/json"}, b'{"a":1}', now)
    second = auth.sign(url, {"Content-Type": "application/json"}, b'{"a":2}', now)
    assert first["X-Amz-Date"] == "20261207T120000Z"
    assert first["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-west-2/bedrock/aws4_request" in first["Authorization"]
    assert first["X-Amz-Security-Token"] == "session-token-value"
    assert first["Authorization"] != second["Authorization"]  # the signature covers the body
    assert "wJalr" not in repr(auth) and "session-token" not in repr(auth)


def test_keys_are_presented_per_auth_and_never_enter_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN_VAR", "secret-token-123")
    bearer = TargetSpec(url="http://127.0.0.1:1", model="m", api_key_env="TOKEN_VAR", protocol="openai",
                        auth="bearer")
    auth = target_auth(bearer)
    assert auth.headers(OPENAI, stream=True)["Authorization"] == "Bearer secret-token-123"
    assert "secret-token-123" not in repr(auth)
    none = target_auth(TargetSpec(url="http://127.0.0.1:1", model="m", auth="key"))
    assert "Authorization" not in none.headers(OPENAI, stream=True)
    plan = RunPlan.build("r", bearer, profile_from_dict({}), _scenario(), 1)
    assert "secret-token-123" not in str(plan.to_json()) and "secret-token-123" not in str(plan.to_record())
    again = RunPlan.from_json(plan.to_json())
    assert (again.target.protocol, again.target.auth, again.target.api_key_env) == ("openai", "bearer", "TOKEN_VAR")


def test_a_version_2_plan_reads_as_an_openai_target() -> None:
    plan = RunPlan.build("r", TargetSpec(url="http://127.0.0.1:1/v1", model="m"), profile_from_dict({}),
                         _scenario(), 1)
    old = plan.to_json()
    old["schema"] = "loadbench.run_plan/2"
    for name in ("protocol", "region", "auth"):
        del old["target"][name]
    target = RunPlan.from_json(old).target
    assert (target.protocol, target.region, target.auth) == ("openai", None, "key")


def _scenario():  # type: ignore[no-untyped-def]
    from loadbench.config import scenario_from_dict

    return scenario_from_dict({})


_AWS_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
              "AWS_DEFAULT_PROFILE", "AWS_CREDENTIAL_EXPIRATION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
              "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")


@pytest.fixture
def aws_files(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """An environment with no AWS credentials but a shared credentials file with two profiles; no
    instance metadata (the chain's last link would wait for it)."""
    for name in _AWS_NAMES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = AKIDDEFAULT\n"
                                          "aws_secret_access_key = default-secret\n"
                                          "[ops]\naws_access_key_id = AKIDOPS\naws_secret_access_key = ops-secret\n"
                                          "aws_session_token = ops-token\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("aws_files")
@pytest.mark.parametrize(("env", "profile", "expected"), [
    ({}, None, AwsCredentials("AKIDDEFAULT", "default-secret")),
    ({"AWS_PROFILE": "ops"}, None, AwsCredentials("AKIDOPS", "ops-secret", "ops-token")),
    ({}, "ops", AwsCredentials("AKIDOPS", "ops-secret", "ops-token")),
    ({"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret"}, None,
     AwsCredentials("AKIDENV", "env-secret")),
    ({"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "s"}, None,
     AwsCredentials("AKIDENV", "env-secret", "s")),
    ({"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SECURITY_TOKEN": "old"}, None,
     AwsCredentials("AKIDENV", "env-secret", "old")),
    ({"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "s",
      "AWS_SECURITY_TOKEN": "old"}, None, AwsCredentials("AKIDENV", "env-secret", "old")),
    # the keys in the environment come before AWS_PROFILE, and a profile named by the caller before them
    ({"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_PROFILE": "ops"}, None,
     AwsCredentials("AKIDENV", "env-secret")),
    ({"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret"}, "ops",
     AwsCredentials("AKIDOPS", "ops-secret", "ops-token")),
])
def test_aws_credentials_are_what_the_standard_chain_finds(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                           profile: str | None, expected: AwsCredentials) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert chain_credentials(profile) == expected  # botocore's own chain: the reference
    assert credentials.aws_credentials(profile) == expected
    if "AWS_ACCESS_KEY_ID" in env and profile is None:
        # keys in the environment a caller passes are the ones read (the gateway checks the one it is given)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDOTHER")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "other-secret")
        assert credentials.aws_credentials(profile, env) == expected


@pytest.mark.usefixtures("aws_files")
def test_gateway_and_eval_find_aws_credentials_through_the_one_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    from loadbench.eval.suite import EvalTarget
    from loadbench.eval.workflow import _aws
    from loadbench.gateway.config import compile_model, parse_model

    target = {"name": "br", "url": "http://127.0.0.1:9", "model": "m", "protocol": "bedrock", "region": "us-east-1"}
    cfg = {"targets": [target], "virtual_models": [{"name": "vm", "targets": [{"target": "br"}]}]}
    env = {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SECURITY_TOKEN": "old"}
    found = compile_model(parse_model(cfg, "gw.yaml"), "gw.yaml", env=env).targets["br"].aws
    assert found is not None and found.credentials == AwsCredentials("AKIDENV", "env-secret", "old")
    found = compile_model(parse_model({**cfg, "targets": [{**target, "aws_profile": "ops"}]}, "gw.yaml"), "gw.yaml",
                          env=env).targets["br"].aws
    assert found is not None and found.credentials == AwsCredentials("AKIDOPS", "ops-secret", "ops-token")
    suite_target = EvalTarget("br", "http://127.0.0.1:9", "m", None, "p", None, (), None, "bedrock", "us-east-1")
    assert _aws(suite_target, "suite.yaml") == ("us-east-1", AwsCredentials("AKIDDEFAULT", "default-secret"))
    monkeypatch.setenv("AWS_SESSION_TOKEN", "s")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    assert _aws(suite_target, "suite.yaml") == ("us-east-1", AwsCredentials("AKIDENV", "env-secret", "s"))
    # nothing anywhere: each command's own message
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(ConfigError, match=r"gw\.yaml: targets\[0\]: the standard AWS chain found no credentials"):
        compile_model(parse_model(cfg, "gw.yaml"), "gw.yaml", env={})
    with pytest.raises(ConfigError, match=r"AWS credentials: the standard AWS chain found none \(needed by 'br'\)"):
        _aws(suite_target, "suite.yaml")
    with pytest.raises(ConfigError, match=r"no AWS credentials found in the standard chain"):
        _check("bedrock", region="us-east-1")
