"""The openai-responses dialect: both halves against each other, and the official ``openai`` SDK's
``responses.create`` as the client of a real server speaking it."""

from __future__ import annotations

import openai
import orjson
import pytest

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
from loadbench.protocol.registry import dialect
from loadbench.protocol.responses import RESPONSES
from tests.protocol.dialect_checks import same_for_any_split
from tests.protocol.dialect_server import USAGE, DialectServer, Script


def _stream(finish: str = STOP) -> bytes:
    enc = RESPONSES.encoder("gpt-x", "resp_1")
    return (enc.head() + enc.content("hmm", "reasoning") + enc.content("Hel") + enc.content("lo")
            + enc.tool_call(ToolCall("call_1", "lookup", '{"q":"x"}')) + enc.tail(finish, USAGE))


def test_a_stream_decodes_to_its_content_usage_tool_call_and_end_for_any_split() -> None:
    got = same_for_any_split(RESPONSES, _stream())
    assert got.content == (Content("hmm", "reasoning"), Content("Hel"), Content("lo"), Content('{"q":"x"}', "tool"))
    assert got.tool_calls == (ToolCall("call_1", "lookup", '{"q":"x"}'),) and got.tool_call
    # a completed response that called a function finished with tool calls
    assert (got.usage, got.model, got.finish, got.done, got.error) == (USAGE, "gpt-x", TOOL_CALLS, True, None)
    assert RESPONSES.usage_in(_stream()) == USAGE


def test_structural_events_are_never_content() -> None:
    enc = RESPONSES.encoder("m", "id")
    assert RESPONSES.decoder().feed(enc.head()).content == ()


@pytest.mark.parametrize("finish", [STOP, LENGTH, CONTENT_FILTER])
def test_finish_reasons_round_trip(finish: str) -> None:
    enc = RESPONSES.encoder("m", "id")
    got = same_for_any_split(RESPONSES, enc.head() + enc.content("a") + enc.tail(finish, None))
    assert (got.finish, got.done, got.usage) == (finish, True, None)


@pytest.mark.parametrize(("code", "status"), [("rate_limit_exceeded", 429), ("server_error", 500)])
def test_a_mid_stream_error_event_is_the_error_with_its_status(code: str, status: int) -> None:
    enc = RESPONSES.encoder("m", "id")
    got = same_for_any_split(RESPONSES, enc.head() + enc.content("a") + enc.error(WireError("oops", code)))
    assert got.error == WireError("oops", code, status) and not got.done
    assert RESPONSES.error(status, RESPONSES.error_body("oops", status)).status == status


def test_a_failed_response_is_an_error() -> None:
    raw = (b'event: response.failed\ndata: {"type":"response.failed","response":{"status":"failed",'
           b'"error":{"code":"server_error","message":"boom"}}}\n\n')
    got = same_for_any_split(RESPONSES, raw)
    assert got.error == WireError("boom", "server_error", 500) and got.done


def test_a_whole_answer_it_writes_decodes_back() -> None:
    answer = Answer(text="hi", finish_reason=TOOL_CALLS, usage=USAGE, model="m", choices=1, tool_call=True,
                    tool_calls=(ToolCall("t1", "f", '{"a":1}'),), reasoning="because")
    body = RESPONSES.answer_body(answer, "resp_1")
    assert RESPONSES.decode(body) == answer
    assert RESPONSES.usage_in(body) == USAGE
    assert RESPONSES.decode(RESPONSES.answer_body(Answer(text="x", finish_reason=LENGTH), "r")).finish_reason == LENGTH
    assert RESPONSES.decode(RESPONSES.error_body("slow", 429)).error == WireError("slow", "rate_limit_error", 429)


def test_parse_request_reads_back_what_the_client_half_writes() -> None:
    req = LLMRequest(model="gpt-x", messages=(
        Message("system", "be brief"), Message("user", "hi"),
        Message("assistant", "let me look", (ToolCall("c1", "f", '{"x":1}'), ToolCall("c2", "g", "{}"))),
        Message("tool", "42", tool_call_id="c1"), Message("tool", "43", tool_call_id="c2"), Message("user", "so?")),
        max_tokens=7, temperature=0.5, stream=True, tools=(Tool("f", "does f", {"type": "object"}),),
        extra={"store": False})
    wire = RESPONSES.request(req, "sk-1")
    body = orjson.loads(wire.body)
    assert (wire.path, wire.headers["Authorization"], body["max_output_tokens"]) == ("/responses", "Bearer sk-1", 7)
    assert [i.get("type", "message") for i in body["input"]] == [
        "message", "message", "message", "function_call", "function_call", "function_call_output",
        "function_call_output", "message"]
    assert RESPONSES.parse_request(wire.body, "/v1/responses") == req
    assert RESPONSES.question(body) == "so?"


def test_parse_request_reads_instructions_and_a_string_input() -> None:
    req = RESPONSES.parse_request(b'{"model": "m", "instructions": "terse", "input": "hello"}')
    assert req.messages == (Message("system", "terse"), Message("user", "hello"))


@pytest.mark.parametrize(("body", "says"), [(b"[1]", "JSON object"), (b'{"input": 3}', "'input'"),
                                            (b'{"input": "x", "max_output_tokens": -1}', "max_output_tokens")])
def test_parse_request_refuses_bad_bodies(body: bytes, says: str) -> None:
    with pytest.raises(InputError, match=says):
        RESPONSES.parse_request(body)


def test_it_is_registered() -> None:
    assert dialect("openai-responses") is RESPONSES


# ------------------------------------------------------------------ the official SDK as the client
SCRIPT = Script(tool_calls=(ToolCall("call_9", "lookup", '{"city":"Paris"}'),), finish=TOOL_CALLS)


def _client(server: DialectServer) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)


def test_the_sdk_reads_a_whole_response() -> None:
    with DialectServer(SCRIPT) as server:
        resp = _client(server).responses.create(model="gpt-x", instructions="terse", input="weather?",
                                                max_output_tokens=50)
    assert resp.output_text == "Hello world" and resp.status == "completed"
    assert [i.type for i in resp.output] == ["reasoning", "message", "function_call"]
    call = resp.output[2]
    assert (call.call_id, call.name, call.arguments) == ("call_9", "lookup", '{"city":"Paris"}')  # type: ignore[union-attr]
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.input_tokens_details.cached_tokens,
            resp.usage.output_tokens_details.reasoning_tokens) == (30, 9, 8, 3)
    seen = server.seen[0]
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert seen.request.messages == (Message("system", "terse"), Message("user", "weather?"))
    assert (seen.request.max_tokens, seen.request.stream) == (50, False)


def test_the_sdk_streams_reasoning_text_and_a_function_call() -> None:
    with DialectServer(SCRIPT) as server:
        events = list(_client(server).responses.create(model="gpt-x", input="weather?", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello world"  # type: ignore[union-attr]
    assert "".join(e.delta for e in events  # type: ignore[union-attr]
                   if e.type == "response.reasoning_summary_text.delta") == "let me think"
    assert "".join(e.delta for e in events  # type: ignore[union-attr]
                   if e.type == "response.function_call_arguments.delta") == '{"city":"Paris"}'
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == "Hello world" and final.usage.input_tokens_details.cached_tokens == 8
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert server.seen[0].request.stream


def test_the_sdks_stream_helper_accumulates_the_events() -> None:
    with DialectServer(SCRIPT) as server, _client(server).responses.stream(model="gpt-x", input="weather?") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == "Hello world"
    assert [i.type for i in final.output] == ["reasoning", "message", "function_call"]


def test_the_sdk_sees_a_mid_stream_error_event() -> None:
    with DialectServer(Script(stream_error=WireError("slow down", "rate_limit_exceeded", 429))) as server:
        events = list(_client(server).responses.create(model="gpt-x", input="x", stream=True))
    assert (events[-1].type, events[-1].code, events[-1].message) == (  # type: ignore[union-attr]
        "error", "rate_limit_exceeded", "slow down")
