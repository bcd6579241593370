"""Issue 20's gateway showcase: one config with an ``anthropic`` target and a ``bedrock`` target behind one
virtual model, an experiment between them, the ``openai`` SDK as the client. The traffic splits; the
Bedrock candidate, which throttles 30% of its requests (a ``throttlingException`` frame before its first
token), is rolled back; the request log has usage and cost for both. Both targets are real servers
speaking their protocols: Bedrock's requests arrive signed with SigV4 for the target's region."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from loadbench.errors import ConfigError
from loadbench.gateway.config import compile_model, parse_model
from loadbench.protocol.bedrock import BEDROCK
from loadbench.protocol.dialect import STOP, WireError
from loadbench.protocol.usage import Usage
from tests.gateway.harness import gateway, run, serve
from tests.gateway.test_requestlog import rows
from tests.protocol.dialect_server import USAGE, DialectServer

pytestmark = pytest.mark.slow
ENV = {"CLAUDE_KEY": "sk-ant-test", "AWS_ACCESS_KEY_ID": "AKIDSHOWCASE", "AWS_SECRET_ACCESS_KEY": "aws-secret",
       "ADMIN_KEYS": "adm"}
BEDROCK_USAGE = Usage(prompt_tokens=40, completion_tokens=7, cached_tokens=16, cache_write_tokens=4)
PRICES = {"input_per_mtok": 3.0, "cached_input_per_mtok": 0.3, "cache_write_per_mtok": 3.75, "output_per_mtok": 15.0}


class ThrottlingBedrock:
    """ConverseStream that throttles 3 requests in every 10, and records each request's signature."""

    def __init__(self) -> None:
        self.calls = 0
        self.authorizations: list[str] = []

    async def answer(self, request: web.Request) -> web.StreamResponse:
        req = BEDROCK.parse_request(await request.read(), request.raw_path)
        self.authorizations.append(request.headers.get("Authorization", ""))
        self.calls += 1
        resp = web.StreamResponse(headers={"Content-Type": BEDROCK.stream_content_type})
        await resp.prepare(request)
        enc = BEDROCK.encoder(req.model, "resp-1", req.kind)
        if self.calls % 10 in (1, 4, 7):
            await resp.write(enc.head() + enc.error(WireError("Too many requests", "throttlingException", 429)))
            return resp
        await resp.write(enc.head())
        for piece in ("Hello", " from", " Bedrock"):
            await resp.write(enc.content(piece))
        await resp.write(enc.tail(STOP, BEDROCK_USAGE))
        return resp


def showcase(claude_url: str, bedrock_url: str, db: Path, pricing: Path) -> dict[str, Any]:
    return {
        "targets": [
            {"name": "claude", "url": claude_url, "model": "claude-sonnet", "protocol": "anthropic",
             "api_key_env": "CLAUDE_KEY"},
            {"name": "bedrock", "url": bedrock_url, "model": "anthropic.claude-v2", "protocol": "bedrock",
             "region": "us-east-1", "failure_tolerance": {"allowed_failures_per_minute": 10_000}}],
        "virtual_models": [{"name": "assistant", "targets": [{"target": "claude"}, {"target": "bedrock"}],
                            "experiment": {"name": "bedrock-canary", "incumbent": "claude", "candidate": "bedrock",
                                           "weight": 50, "rollback": {
                                               "window_s": 30, "min_requests": 20, "failed_checks": 2,
                                               "interval_s": 0.25, "max_error_rate": 0.1}}}],
        "request_log": {"path": str(db), "flush_ms": 50, "pricing": str(pricing)},
        "admin": {"api_keys_env": "ADMIN_KEYS"},
    }


def test_an_experiment_between_anthropic_and_bedrock_splits_rolls_back_and_logs_cost(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    pricing = tmp_path / "pricing.yaml"
    pricing.write_text("source: test\nas_of: 2026-11-01\nmodels:\n"
                       f"  claude-sonnet: {PRICES}\n  anthropic.claude-v2: {PRICES}\n".replace("'", ""))
    bedrock = ThrottlingBedrock()
    app = web.Application()
    app.router.add_post("/model/{model}/converse-stream", bedrock.answer)
    state: dict[str, Any] = {}

    async def go(claude_url: str) -> None:
        async with serve(app) as bedrock_url, \
                gateway(showcase(claude_url, bedrock_url, db, pricing), ENV) as (url, gw):
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
            stop = asyncio.Event()
            answers: list[str] = []

            async def user() -> None:
                while not stop.is_set():
                    try:
                        stream = await client.chat.completions.create(
                            model="assistant", messages=[{"role": "user", "content": "hi"}], stream=True,
                            stream_options={"include_usage": True})
                        answers.append("".join([p.choices[0].delta.content or "" async for p in stream
                                                if p.choices]))
                    except openai.RateLimitError:
                        answers.append("throttled")

            users = [asyncio.ensure_future(user()) for _ in range(6)]
            deadline = time.monotonic() + 25
            try:
                async with aiohttp.ClientSession() as s:
                    while time.monotonic() < deadline:
                        await asyncio.sleep(0.2)
                        async with s.get(url + "/admin/experiments", headers={"Authorization": "Bearer adm"}) as r:
                            listing = await r.json()
                        if listing["experiments"][0]["state"] == "rolled_back":
                            break
            finally:
                stop.set()
                await asyncio.gather(*users, return_exceptions=True)
            state["listing"], state["answers"] = listing, answers
            after = [(await client.chat.completions.with_raw_response.create(
                model="assistant", messages=[{"role": "user", "content": "hi"}])).headers["x-loadbench-target"]
                for _ in range(10)]
            state["after"] = after
            await client.close()
            await gw.close()

    with DialectServer() as claude:
        run(go(claude.url))
    listing = state["listing"]
    assert listing["experiments"][0]["state"] == "rolled_back", listing
    trip = next(e for e in listing["events"] if e["action"] == "trip")
    assert "error rate" in trip["reason"]
    assert set(state["after"]) == {"claude"}  # rolled back: all traffic on the incumbent
    answers = state["answers"]
    assert "Hello world" in answers and "Hello from Bedrock" in answers and "throttled" in answers
    # every Bedrock request was signed (SigV4) with the environment's key for the target's region
    assert bedrock.authorizations and all(
        a.startswith("AWS4-HMAC-SHA256 Credential=AKIDSHOWCASE/") and "/us-east-1/bedrock/aws4_request" in a
        for a in bedrock.authorizations)
    logged = rows(db, "role = 'primary'")
    by_target = {t: [r for r in logged if r["target"] == t] for t in ("claude", "bedrock")}
    assert len(by_target["claude"]) >= 5 and len(by_target["bedrock"]) >= 5  # the traffic split
    throttled = [r for r in logged if r["status"] == 429]  # failed: no target answered
    assert throttled and all(r["outcome"] == "error" and r["arm"] == "candidate" for r in throttled)
    price = {"in": 3.0, "cached": 0.3, "write": 3.75, "out": 15.0}

    def cost(u: Usage) -> float:
        uncached = u.prompt_tokens - u.cached_tokens - u.cache_write_tokens
        return (uncached * price["in"] + u.cached_tokens * price["cached"] + u.cache_write_tokens * price["write"]
                + u.completion_tokens * price["out"]) / 1e6

    for target, usage in (("claude", USAGE), ("bedrock", BEDROCK_USAGE)):
        served = [r for r in by_target[target] if r["status"] == 200 and r["arm"]]
        assert served, target
        for r in served:
            assert (r["prompt_tokens"], r["output_tokens"], r["cached_tokens"]) == (
                usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens), r
            assert r["cost_usd"] == pytest.approx(cost(usage))


def test_a_bedrock_target_without_a_region_or_credentials_is_refused_naming_the_field(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = {"name": "br", "url": "http://127.0.0.1:9", "model": "m", "protocol": "bedrock"}
    cfg = {"targets": [target], "virtual_models": [{"name": "vm", "targets": [{"target": "br"}]}]}
    with pytest.raises(ConfigError) as err:
        compile_model(parse_model(cfg, "gw.yaml"), "gw.yaml", env={"AWS_ACCESS_KEY_ID": "a",
                                                                   "AWS_SECRET_ACCESS_KEY": "b"})
    assert "targets[0].region" in str(err.value)
    target["region"] = "mars"
    with pytest.raises(ConfigError) as err:
        compile_model(parse_model(cfg, "gw.yaml"), "gw.yaml", env={"AWS_ACCESS_KEY_ID": "a",
                                                                   "AWS_SECRET_ACCESS_KEY": "b"})
    assert "targets[0].region" in str(err.value) and "not an AWS region" in str(err.value)
    gemini = {"targets": [{"name": "g", "url": "http://127.0.0.1:9", "model": "https://x/models/g:generateContent",
                           "protocol": "gemini"}], "virtual_models": [{"name": "vm", "targets": [{"target": "g"}]}]}
    with pytest.raises(ConfigError) as err:
        compile_model(parse_model(gemini, "gw.yaml"), "gw.yaml", env={})
    assert "targets[0].model" in str(err.value) and "gemini-2.5-flash" in str(err.value)
    # no credentials anywhere in the standard chain
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    target["region"] = "us-east-1"
    with pytest.raises(ConfigError) as err:
        compile_model(parse_model(cfg, "gw.yaml"), "gw.yaml", env={})
    assert "targets[0]" in str(err.value) and "AWS_ACCESS_KEY_ID" in str(err.value)
    # a region on a target that is not bedrock is a mistake
    cfg["targets"] = [{**target, "protocol": "anthropic"}]
    with pytest.raises(ConfigError) as err:
        compile_model(parse_model(cfg, "gw.yaml"), "gw.yaml", env={})
    assert "targets[0].region" in str(err.value)
    # the signing credentials never show in the spec's repr
    cfg["targets"] = [target]
    spec = compile_model(parse_model(cfg, "gw.yaml"), "gw.yaml", env={"AWS_ACCESS_KEY_ID": "AKID",
                                                                     "AWS_SECRET_ACCESS_KEY": "very-secret"})
    assert "very-secret" not in repr(spec.targets["br"]) and "very-secret" not in repr(spec.targets["br"].aws)


def test_the_example_providers_config_is_valid() -> None:
    from loadbench.gateway.config import load_config

    root = Path(__file__).resolve().parents[2]
    spec = load_config(root / "profiles/gateway/providers.yaml",
                       env={"ANTHROPIC_API_KEY": "k", "AZURE_OPENAI_API_KEY": "k", "ADMIN_KEYS": "k",
                            "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s"})
    assert {name: t.protocol for name, t in spec.targets.items()} == {
        "anthropic": "anthropic", "bedrock": "bedrock", "azure": "azure"}
    bedrock = spec.targets["bedrock"].aws
    assert bedrock is not None and bedrock.region == "us-east-1"
    assert 529 in spec.routes["fallback-chat"].fallback_status_codes
