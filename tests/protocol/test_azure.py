"""The azure dialect: Azure's URLs and auth on OpenAI's body, filter frames that are never content, and
``openai.AzureOpenAI`` as the client of a real server speaking it."""

from __future__ import annotations

from dataclasses import replace

import openai
import pytest

from loadbench.protocol.azure import API_V1, AZURE, azure, deployment
from loadbench.protocol.dialect import CONTENT_FILTER, STOP, Answer, Content, LLMRequest, Message, WireError
from loadbench.protocol.registry import dialect
from tests.protocol.dialect_checks import same_for_any_split
from tests.protocol.dialect_server import USAGE, DialectServer, Script

# OpenAI's usage, which Azure reports, has no cache writes
AZ_USAGE = replace(USAGE, cache_write_tokens=0)
REQ = LLMRequest(model="my-gpt", messages=(Message("user", "hi"),), max_tokens=5, stream=True)


def test_deployment_urls_carry_the_api_version_and_the_key_goes_in_api_key() -> None:
    wire = AZURE.request(REQ, "azkey")
    assert wire.path == "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21"
    assert wire.headers["api-key"] == "azkey" and "Authorization" not in wire.headers
    assert AZURE.url("https://r.openai.azure.com/", "chat", "my-gpt").startswith(
        "https://r.openai.azure.com/openai/deployments/my-gpt/chat/completions?api-version=")
    assert deployment(wire.path) == "my-gpt"


def test_the_v1_surface_has_no_api_version_and_a_bearer_token_is_accepted() -> None:
    wire = azure(API_V1, bearer=True).request(REQ, "entra-token")
    assert wire.path == "/openai/v1/chat/completions"
    assert wire.headers["Authorization"] == "Bearer entra-token" and "api-key" not in wire.headers
    assert azure("2025-04-01-preview").request(REQ).path.endswith("?api-version=2025-04-01-preview")


def test_filter_frames_are_never_content_and_content_filter_is_its_own_finish() -> None:
    enc = AZURE.encoder("my-gpt", "c1")
    raw = enc.head() + enc.filter_frame() + enc.content("Hel") + enc.content("lo") + enc.tail(CONTENT_FILTER, AZ_USAGE)
    got = same_for_any_split(AZURE, raw)
    assert got.content == (Content("Hel"), Content("lo"))
    assert (got.finish, got.usage, got.model, got.done) == (CONTENT_FILTER, AZ_USAGE, "my-gpt", True)
    assert AZURE.decoder().feed(enc.filter_frame()).content == ()


def test_parse_request_takes_the_deployment_from_the_path() -> None:
    wire = AZURE.request(REQ)
    assert AZURE.parse_request(wire.body, wire.path) == REQ
    bare = AZURE.parse_request(b'{"messages": [{"role": "user", "content": "x"}]}',
                               "/openai/deployments/dep-2/chat/completions?api-version=2024-10-21")
    assert bare.model == "dep-2"


def test_a_filtered_prompt_is_a_content_filter_error() -> None:
    body = (b'{"error": {"message": "The response was filtered", "type": null, "param": "prompt", '
            b'"code": "content_filter", "status": 400}}')
    assert AZURE.error(400, body) == WireError("The response was filtered", "content_filter", 400)
    assert AZURE.error(429, AZURE.error_body("slow", 429)).kind == "rate_limit_error"


def test_a_whole_answer_carries_filter_results_and_decodes_back() -> None:
    body = AZURE.answer_body(Answer(text="hi", finish_reason=STOP, usage=AZ_USAGE, model="m"), "c1")
    assert b"prompt_filter_results" in body and b"content_filter_results" in body
    back = AZURE.decode(body)
    assert (back.text, back.finish_reason, back.usage) == ("hi", STOP, AZ_USAGE)


def test_it_is_registered() -> None:
    assert dialect("azure") is AZURE


# ------------------------------------------------------------------ openai.AzureOpenAI as the client
def _client(server: DialectServer) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=server.url, api_key="azkey", api_version="2024-10-21", max_retries=0)


def test_the_sdk_reads_a_whole_completion_from_a_deployment_url() -> None:
    with DialectServer() as server:
        resp = _client(server).chat.completions.create(model="my-gpt", max_tokens=9,
                                                       messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "Hello world" and resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (30, 9)
    seen = server.seen[0]
    assert seen.dialect == "azure" and seen.headers["api-key"] == "azkey"
    assert seen.path == "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21"
    assert (seen.request.model, seen.request.max_tokens, seen.request.stream) == ("my-gpt", 9, False)


def test_the_sdk_streams_past_the_filter_frames() -> None:
    with DialectServer(Script(finish=CONTENT_FILTER)) as server:
        chunks = list(_client(server).chat.completions.create(
            model="my-gpt", messages=[{"role": "user", "content": "hi"}], stream=True,
            stream_options={"include_usage": True}))
    assert chunks[0].choices == [] and chunks[0].prompt_filter_results  # type: ignore[attr-defined]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello world"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "content_filter"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9
    assert server.seen[0].request.stream


@pytest.mark.parametrize("stream", [False, True])
def test_the_v1_surface_answers_the_plain_openai_client(stream: bool) -> None:
    with DialectServer() as server:
        client = openai.OpenAI(base_url=server.url + "/openai/v1", api_key="entra", max_retries=0)
        resp = client.chat.completions.create(model="my-gpt", messages=[{"role": "user", "content": "hi"}],
                                              stream=stream)
        text = "".join(c.choices[0].delta.content or "" for c in resp if c.choices) if stream \
            else resp.choices[0].message.content  # type: ignore[union-attr]
    assert text == "Hello world"
    assert (server.seen[0].dialect, server.seen[0].request.model) == ("azure", "my-gpt")
    assert server.seen[0].headers["authorization"] == "Bearer entra"
