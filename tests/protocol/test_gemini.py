"""The gemini dialect: both halves against each other, and the official ``google-genai`` SDK as the client
of a real server speaking it."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from loadbench.errors import InputError
from loadbench.protocol.dialect import (
    CONTENT_FILTER,
    LENGTH,
    STOP,
    TOOL_CALLS,
    Answer,
    Content,
    LLMRequest,
    Message,
    Tool,
    ToolCall,
    WireError,
)
from loadbench.protocol.gemini import GEMINI, GeminiStreamEncoder, check_model, vertex
from loadbench.protocol.registry import dialect
from tests.protocol.dialect_checks import same_for_any_split
from tests.protocol.dialect_server import USAGE, DialectServer, Script

# Gemini reports no cache writes
G_USAGE = replace(USAGE, cache_write_tokens=0)


def _stream(finish: str = STOP, *, crlf: bool = True) -> bytes:
    enc = GeminiStreamEncoder("gemini-x", "r1", crlf=crlf)
    return (enc.head() + enc.content("hmm", "reasoning") + enc.content("Hello there")
            + enc.tool_call(ToolCall("call_1", "lookup", '{"q":"x"}')) + enc.tail(finish, G_USAGE))


@pytest.mark.parametrize("crlf", [True, False])
def test_a_stream_decodes_to_its_content_usage_tool_call_and_end_for_any_split(crlf: bool) -> None:
    raw = _stream(crlf=crlf)
    assert (b"\r\n\r\n" in raw) == crlf
    got = same_for_any_split(GEMINI, raw)
    assert got.content == (Content("hmm", "reasoning"), Content("Hello there"), Content('{"q":"x"}', "tool"))
    assert got.tool_calls == (ToolCall("call_1", "lookup", '{"q":"x"}'),) and got.tool_call
    # STOP after a function call finishes with tool calls; the finish frame ends the answer
    assert (got.usage, got.model, got.finish, got.done, got.error) == (G_USAGE, "gemini-x", TOOL_CALLS, True, None)
    assert GEMINI.usage_in(raw) == G_USAGE


def test_a_stream_cut_before_its_finish_frame_is_not_done() -> None:
    enc = GEMINI.encoder("m", "r")
    assert not same_for_any_split(GEMINI, enc.content("a") + enc.content("b")).done


@pytest.mark.parametrize(("finish", "wire"), [(STOP, "STOP"), (LENGTH, "MAX_TOKENS"), (CONTENT_FILTER, "SAFETY")])
def test_finish_reasons_map_both_ways(finish: str, wire: str) -> None:
    raw = GEMINI.encoder("m", "r").tail(finish, None)
    assert f'"finishReason":"{wire}"'.encode() in raw
    assert GEMINI.decoder().feed(raw).finish_reason == finish


def test_a_blocked_prompt_is_a_content_filter_end() -> None:
    got = same_for_any_split(GEMINI, b'data: {"promptFeedback": {"blockReason": "SAFETY"}}\r\n\r\n')
    assert (got.finish, got.done, got.content) == (CONTENT_FILTER, True, ())


@pytest.mark.parametrize(("status", "kind"), [(429, "RESOURCE_EXHAUSTED"), (503, "UNAVAILABLE"), (500, "INTERNAL")])
def test_an_error_frame_is_the_error_with_its_status(status: int, kind: str) -> None:
    enc = GEMINI.encoder("m", "r")
    got = same_for_any_split(GEMINI, enc.content("a") + enc.error(WireError("quota", "", status)))
    assert got.error == WireError("quota", kind, status) and not got.done
    assert GEMINI.error(status, GEMINI.error_body("quota", status)) == WireError("quota", kind, status)
    assert GEMINI.decode(GEMINI.error_body("quota", status)).error == WireError("quota", kind, status)


def test_a_whole_answer_it_writes_decodes_back() -> None:
    answer = Answer(text="hi", finish_reason=TOOL_CALLS, usage=G_USAGE, model="m", choices=1, tool_call=True,
                    tool_calls=(ToolCall("t1", "f", '{"a":1}'),), reasoning="because")
    assert GEMINI.decode(GEMINI.answer_body(answer, "r")) == answer
    assert GEMINI.usage_in(GEMINI.answer_body(answer, "r")) == G_USAGE


def test_parse_request_reads_back_what_the_client_half_writes() -> None:
    req = LLMRequest(model="gemini-x", messages=(
        Message("system", "be brief"), Message("user", "hi"),
        Message("assistant", "let me look", (ToolCall("c1", "f", '{"x":1}'), ToolCall("c2", "g", "{}"))),
        Message("tool", "42", tool_call_id="c1"), Message("tool", "43", tool_call_id="c2"), Message("user", "so?")),
        max_tokens=7, temperature=0.5, stream=True, tools=(Tool("f", "does f", {"type": "object"}),),
        extra={"generationConfig": {"topK": 3}, "safetySettings": []})
    wire = GEMINI.request(req, "gkey")
    body = orjson.loads(wire.body)
    assert wire.path == "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    assert wire.headers["x-goog-api-key"] == "gkey"
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user", "user"]
    assert body["contents"][2]["parts"][1]["functionResponse"] == {"id": "c2", "name": "g",
                                                                   "response": {"result": "43"}}
    assert GEMINI.parse_request(wire.body, wire.path) == req
    assert GEMINI.request(replace(req, stream=False, model="models/gemini-x")).path == \
        "/v1beta/models/gemini-x:generateContent"
    assert GEMINI.question(body) == "so?"


def test_vertex_paths_take_a_bearer_token() -> None:
    wire = vertex("proj", "us-central1").request(LLMRequest(model="gemini-x", messages=(Message("user", "x"),),
                                                            stream=True), "ya29.token")
    assert wire.path == ("/v1/projects/proj/locations/us-central1/publishers/google/models/gemini-x"
                         ":streamGenerateContent?alt=sse")
    assert wire.headers["Authorization"] == "Bearer ya29.token"
    assert GEMINI.parse_request(wire.body, wire.path).model == "gemini-x"


@pytest.mark.parametrize(("path", "body", "says"), [
    ("/v1beta/models/m:countTokens", b'{"contents": []}', "generateContent"),
    ("/v1beta/models/m:streamGenerateContent", b'{"contents": []}', "alt=sse"),
    ("/v1beta/models/m:generateContent", b'{"contents": {}}', "'contents'"),
    ("/v1beta/models/m:generateContent", b'{"contents": [{"role": "user"}]}', "'parts'"),
    ("/v1beta/models/m:generateContent", b'{"contents": [], "generationConfig": {"maxOutputTokens": 0}}',
     "generationConfig.maxOutputTokens")])
def test_parse_request_refuses_bad_requests(path: str, body: bytes, says: str) -> None:
    with pytest.raises(InputError, match=says):
        GEMINI.parse_request(body, path)


def test_it_is_registered() -> None:
    assert dialect("gemini") is GEMINI


# ------------------------------------------------------------------ google-genai as the client
SCRIPT = Script(tool_calls=(ToolCall("fc_1", "lookup", '{"city":"Paris"}'),), finish=TOOL_CALLS, usage=G_USAGE)


def _client(server: DialectServer) -> genai.Client:
    # the caller keeps the client while it reads: a collected Client closes its connection pool
    return genai.Client(api_key="gkey", http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"))


def _config() -> types.GenerateContentConfig:
    return types.GenerateContentConfig(system_instruction="terse", max_output_tokens=50)


def test_the_sdk_reads_a_whole_answer() -> None:
    with DialectServer(SCRIPT) as server:
        client = _client(server)
        resp = client.models.generate_content(model="gemini-x", contents="weather?", config=_config())
    parts = resp.candidates[0].content.parts  # type: ignore[index,union-attr]
    assert (parts[0].thought, parts[0].text, parts[1].text) == (True, "let me think", "Hello world")  # type: ignore[index]
    assert (parts[2].function_call.name, parts[2].function_call.args) == ("lookup", {"city": "Paris"})  # type: ignore[index,union-attr]
    meta = resp.usage_metadata
    assert meta is not None and (meta.prompt_token_count, meta.candidates_token_count, meta.thoughts_token_count,
                                 meta.cached_content_token_count) == (30, 6, 3, 8)
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    seen = server.seen[0]
    assert seen.headers["x-goog-api-key"] == "gkey" and seen.path == "/v1beta/models/gemini-x:generateContent"
    assert seen.request.messages == (Message("system", "terse"), Message("user", "weather?"))
    assert (seen.request.max_tokens, seen.request.stream) == (50, False)


def test_the_sdk_streams_crlf_frames_to_the_end_of_the_body() -> None:
    with DialectServer(SCRIPT) as server:
        client = _client(server)
        chunks = list(client.models.generate_content_stream(model="gemini-x", contents="weather?", config=_config()))
    parts = [p for c in chunks if c.candidates and c.candidates[0].content
             for p in c.candidates[0].content.parts or ()]
    assert "".join(p.text for p in parts if p.text and not p.thought) == "Hello world"
    assert "".join(p.text for p in parts if p.text and p.thought) == "let me think"
    assert [p.function_call.args for p in parts if p.function_call] == [{"city": "Paris"}]
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.thoughts_token_count == 3
    assert server.seen[0].path == "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    assert server.seen[0].request.stream


def test_the_sdk_raises_an_error_frame_with_its_code() -> None:
    with DialectServer(Script(stream_error=WireError("quota", "RESOURCE_EXHAUSTED", 429))) as server, \
            pytest.raises(genai_errors.ClientError) as caught:
        client = _client(server)
        list(client.models.generate_content_stream(model="gemini-x", contents="x"))
    assert caught.value.code == 429


def test_the_sdk_raises_an_error_answer_with_its_status() -> None:
    with DialectServer(Script(status_error=WireError("down", "UNAVAILABLE", 503))) as server, \
            pytest.raises(genai_errors.ServerError) as caught:
        client = _client(server)
        client.models.generate_content(model="gemini-x", contents="x")
    assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")


@pytest.mark.parametrize("stream", [False, True])
def test_the_sdk_on_vertex_sends_a_bearer_token_to_the_vertex_path(stream: bool) -> None:
    from google.oauth2.credentials import Credentials

    with DialectServer() as server:
        client = genai.Client(vertexai=True, project="proj", location="us-central1", credentials=Credentials("ya29.t"),
                              http_options=types.HttpOptions(base_url=server.url))
        if stream:
            chunks = list(client.models.generate_content_stream(model="gemini-x", contents="hi"))
            text = "".join(p.text for c in chunks if c.candidates and c.candidates[0].content
                           for p in c.candidates[0].content.parts or () if p.text and not p.thought)
        else:
            resp = client.models.generate_content(model="gemini-x", contents="hi")
            text = "".join(p.text for p in resp.candidates[0].content.parts  # type: ignore[index,union-attr]
                           if p.text and not p.thought)
    assert text == "Hello world"
    seen = server.seen[0]
    assert seen.path.startswith("/v1beta1/projects/proj/locations/us-central1/publishers/google/models/gemini-x:")
    assert seen.headers["authorization"] == "Bearer ya29.t" and seen.request.stream == stream


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "models/gemini-2.5-flash", "gemini-1.5-pro-002"])
def test_a_model_name_is_accepted(model: str) -> None:
    assert check_model(model) == model


@pytest.mark.parametrize("model", ["", "https://x/models/gemini", "gemini-2.5-flash:generateContent",
                                   "projects/p/models/m", "tunedModels/abc", "gemini 2"])
def test_a_model_that_is_not_a_model_name_is_refused_with_the_fix(model: str) -> None:
    with pytest.raises(InputError, match=r"write it as 'gemini-2\.5-flash'"):
        check_model(model)
