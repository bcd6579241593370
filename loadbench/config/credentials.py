"""A target's protocol and credentials, checked before any request; the secrets read from the environment.

Each protocol presents its secret its own way (OpenAI ``Authorization: Bearer``, Anthropic ``x-api-key``,
Azure ``api-key`` or an Entra bearer token, Gemini ``x-goog-api-key`` or a Vertex bearer token, Bedrock
AWS SigV4). A target names only *where* the secret is: the variable (``api_key_env``, defaulting per
protocol below) or, for Bedrock, botocore's standard AWS chain (environment, shared files, the
instance's role) and a ``region``. The secret itself is read here, in the process that sends the
request, and never enters a plan, a manifest or a log.

``check_target`` runs before any request: an unknown protocol names the known ones, a missing
credential names its variable, Bedrock without a region and a Gemini model that is not a model path
name the field and the fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol
from urllib.parse import urlsplit

from loadbench.errors import ConfigError, InputError
from loadbench.protocol import aws
from loadbench.protocol.aws import AwsCredentials, chain_credentials
from loadbench.protocol.dialect import Dialect, WireRequest
from loadbench.protocol.registry import dialect

Auth = Literal["key", "bearer", "aws", "none"]
KEY: Auth = "key"
BEARER: Auth = "bearer"
AWS: Auth = "aws"
NONE: Auth = "none"

# The variable a protocol's key is read from when the target names none. OpenAI's stays opt-in
# (a local engine takes no key, and a run never sent one unless asked).
DEFAULT_KEY_ENV: dict[tuple[str, Auth], str] = {
    ("anthropic", KEY): "ANTHROPIC_API_KEY",
    ("azure", KEY): "AZURE_OPENAI_API_KEY",
    ("azure", BEARER): "AZURE_OPENAI_AD_TOKEN",  # an Entra ID token, as the openai SDK reads it
    ("gemini", KEY): "GEMINI_API_KEY",
    ("gemini", BEARER): "GOOGLE_ACCESS_TOKEN",  # Vertex: `gcloud auth print-access-token`
}
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION")
# A Gemini model is a name or a resource path ending in one: gemini-2.0-flash, models/gemini-2.0-flash,
# publishers/google/models/..., projects/P/locations/L/publishers/google/models/...
_MODEL_NAME = r"[A-Za-z0-9][A-Za-z0-9._@-]*"
_SEGMENT = r"[^/\s]+"
_VERTEX_MODEL = re.compile(rf"^projects/({_SEGMENT})/locations/({_SEGMENT})/publishers/google/models/({_MODEL_NAME})$")


@dataclass(frozen=True, slots=True)
class Credential:
    """Where a target's secret comes from (names only): ``auth`` and the variable ``env``."""

    auth: Auth
    env: str | None = None


def default_auth(protocol: str, url: str) -> Auth:
    """Bedrock signs with AWS keys; Vertex (``*-aiplatform.googleapis.com``) takes a bearer token;
    every other protocol presents a key its own way."""
    if protocol == "bedrock":
        return AWS
    if protocol == "gemini" and (urlsplit(url).hostname or "").endswith("aiplatform.googleapis.com"):
        return BEARER
    return KEY


def credential(protocol: str, url: str, api_key_env: str | None, auth: Auth | None = None) -> Credential:
    """The target's credential: its own variable, else the protocol's default one (None: no key sent)."""
    how = auth or default_auth(protocol, url)
    if how in (AWS, NONE):
        return Credential(how)
    return Credential(how, api_key_env or DEFAULT_KEY_ENV.get((protocol, how)))


def check_protocol(protocol: str, where: str, field: str) -> None:
    """``protocol`` is a registered dialect; ConfigError naming the field and the known protocols."""
    try:
        dialect(protocol)
    except InputError as exc:
        raise ConfigError(where, field, str(exc), "use one of the known protocols") from None


def check_target(*, where: str, name: str, protocol: str, url: str, model: str | None, cred: Credential,
                 region: str | None, require_secret: bool = True) -> None:
    """Every check that needs no request, in the order a user fixes them. ``require_secret`` False
    (a mock loadbench starts itself) lets a missing key pass."""
    field = f"targets[{name}]"
    check_protocol(protocol, where, f"{field}.protocol")
    if protocol == "gemini" and model is not None and not _VERTEX_MODEL.match(model):
        from loadbench.protocol.gemini import check_model

        try:
            check_model(model)
        except InputError as exc:
            raise ConfigError(where, f"{field}.model", str(exc),
                              "or, on Vertex, projects/P/locations/L/publishers/google/models/NAME") from None
    if cred.auth == AWS:
        from loadbench.protocol.bedrock import check_region

        try:
            check_region(region)
        except InputError as exc:
            raise ConfigError(where, f"{field}.region", str(exc), "or --region on the command line") from None
        if require_secret and aws_credentials() is None:
            raise ConfigError(where, f"{field}", "no AWS credentials found in the standard chain",
                              "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), "
                              "or set AWS_PROFILE")
        return
    if require_secret and cred.env is not None and not os.environ.get(cred.env):
        raise ConfigError(where, f"{field}.api_key_env", f"{cred.env} is not set",
                          f"export {cred.env}=... before the run (or name another variable in api_key_env)")


def region_of(region: str | None) -> str | None:
    """The target's region, else the AWS SDKs' region variables."""
    if region:
        return region
    for name in REGION_ENV:
        if os.environ.get(name):
            return os.environ[name]
    return None


# the variables the standard AWS chain reads first (botocore's EnvProvider), in its order: the session
# token's older name AWS_SECURITY_TOKEN, when set, before AWS_SESSION_TOKEN
AWS_KEY_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
AWS_TOKEN_ENV = ("AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")


def aws_credentials(profile: str | None = None, env: Mapping[str, str] | None = None) -> AwsCredentials | None:
    """The AWS credentials of the standard chain (None when it finds none), the one lookup of every
    command that signs: the keys in ``env`` (default: the environment), AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY with AWS_SESSION_TOKEN, unless ``profile`` names a profile; else botocore's
    chain (that profile or AWS_PROFILE's, the shared files, a container's or an instance's role). The
    keys in the environment are read here, as the chain's first link reads them, so that a process with
    them never imports botocore's session machinery, and a caller can pass the environment it checks."""
    env = os.environ if env is None else env
    key, secret = (env.get(name) for name in AWS_KEY_ENV)
    if key and secret and profile is None:
        token = next((env[name] for name in AWS_TOKEN_ENV if env.get(name)), None)
        return AwsCredentials(key, secret, token)
    return chain_credentials(profile)


def target_dialect(protocol: str, model: str) -> tuple[Dialect, str]:
    """The dialect a target speaks and the model as its paths name it: a Gemini model written as a Vertex
    resource path (``projects/P/locations/L/publishers/google/models/NAME``) is Vertex's paths for P and L
    with NAME; every other target speaks its registered dialect."""
    vertex_path = _VERTEX_MODEL.match(model) if protocol == "gemini" else None
    if vertex_path is not None:
        from loadbench.protocol.gemini import vertex

        project, location, name = vertex_path.groups()
        return vertex(project, location), name
    return dialect(protocol), model


class NamedCredential(Protocol):
    """A target as the plan carries it (names only: this package does not import the plan)."""

    @property
    def auth(self) -> str: ...
    @property
    def api_key_env(self) -> str | None: ...
    @property
    def region(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class RequestAuth:
    """A target's secret, read from the environment in the process that sends (never written anywhere;
    its repr hides it): ``headers`` present a key or token, ``sign`` adds SigV4 to one request."""

    auth: str
    key: str | None = field(default=None, repr=False)
    region: str | None = None
    aws: AwsCredentials | None = field(default=None, repr=False)

    def headers(self, wire: Dialect, *, stream: bool, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Every request's headers: the dialect's own with the key, or ``Authorization: Bearer``."""
        if self.auth == BEARER:
            out = wire.headers(None, stream=stream, extra=extra)
            if self.key:
                out["Authorization"] = "Bearer " + self.key
            return out
        return wire.headers(self.key if self.auth == KEY else None, stream=stream, extra=extra)

    def sign(self, url: str, headers: Mapping[str, str], body: bytes, now: datetime | None = None) -> dict[str, str]:
        """``headers`` plus the SigV4 signature of this one request (service ``bedrock``) at ``now``
        (default: the clock), for an ``aws`` target; the headers unchanged otherwise. Signed per
        request: the signature covers the body and the time."""
        if self.auth != AWS or self.aws is None:
            return dict(headers)
        return aws.sign(WireRequest("", dict(headers), body), url, self.aws, self.region or "us-east-1",
                        now or datetime.now(UTC))


def target_auth(target: NamedCredential) -> RequestAuth:
    """The secret a planned target names, read now (a key variable unset since the check: no key)."""
    if target.auth == AWS:
        return RequestAuth(AWS, region=target.region, aws=aws_credentials())
    env = target.api_key_env
    return RequestAuth(target.auth, key=(os.environ.get(env) or None) if env else None)
