"""The anthropic dialect: both halves against each other, and the official ``anthropic`` SDK as the
client of a real server speaking it."""

from __future__ import annotations

import anthropic
import orjson
import pytest

from loadbench.errors import InputError
from loadbench.protocol.anthropic import ANTHROPIC, request_key
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
from loadbench.protocol.usage import Usage
from tests.protocol.dialect_checks import same_for_any_split
from tests.protocol.dialect_server import USAGE, DialectServer, Script


def _stream(finish: str = STOP) -> bytes:
    enc = ANTHROPIC.encoder("claude-x", "msg_1")
    return (enc.head() + enc.keepalive() + enc.content("hmm", "reasoning") + enc.content("Hel") + enc.content("lo")
            + enc.tool_call(ToolCall("tu_1", "lookup", '{"q":"x"}')) + enc.tail(finish, USAGE))


def test_a_stream_decodes_to_its_content_usage_tool_call_and_end_for_any_split() -> None:
    got = same_for_any_split(ANTHROPIC, _stream(TOOL_CALLS))
    assert got.content == (Content("hmm", "reasoning"), Content("Hel"), Content("lo"), Content('{"q":"x"}', "tool"))
    assert got.tool_calls == (ToolCall("tu_1", "lookup", '{"q":"x"}'),) and got.tool_call
    assert (got.usage, got.model, got.finish, got.done, got.error) == (USAGE, "claude-x", TOOL_CALLS, True, None)


def test_structural_events_are_never_content() -> None:
    enc = ANTHROPIC.encoder("m", "id")
    dec = ANTHROPIC.decoder()
    for raw in (enc.head(), enc.keepalive(), b'event: content_block_start\ndata: {"type":"content_block_start",'
                b'"index":0,"content_block":{"type":"text","text":""}}\n\n'):
        assert dec.feed(raw).content == ()


@pytest.mark.parametrize(("finish", "wire"), [(STOP, "end_turn"), (LENGTH, "max_tokens"),
                                              (TOOL_CALLS, "tool_use"), (CONTENT_FILTER, "refusal")])
def test_finish_reasons_map_both_ways(finish: str, wire: str) -> None:
    raw = ANTHROPIC.encoder("m", "id").tail(finish, None)
    assert f'"stop_reason":"{wire}"'.encode() in raw
    assert ANTHROPIC.decoder().feed(raw).finish_reason == finish


def test_usage_merges_message_start_with_the_cumulative_message_delta() -> None:
    raw = (b'event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":'
           b'{"input_tokens":10,"output_tokens":1,"cache_read_input_tokens":5,"cache_creation_input_tokens":1}}}\n\n'
           b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
           b'"usage":{"output_tokens":7}}\n\n')
    assert same_for_any_split(ANTHROPIC, raw).usage == Usage(16, 7, 5, 1, 0)
    assert ANTHROPIC.usage_in(_stream()) == USAGE


@pytest.mark.parametrize(("kind", "status"), [("overloaded_error", 529), ("rate_limit_error", 429),
                                              ("api_error", 500), ("invalid_request_error", 400)])
def test_a_mid_stream_error_event_is_the_error_with_its_status(kind: str, status: int) -> None:
    enc = ANTHROPIC.encoder("m", "id")
    got = same_for_any_split(ANTHROPIC, enc.head() + enc.content("a") + enc.error(WireError("busy", kind)))
    assert got.error == WireError("busy", kind, status) and not got.done
    assert ANTHROPIC.error(status, ANTHROPIC.error_body("busy", status)) == WireError("busy", kind, status)


def test_a_whole_answer_it_writes_decodes_back() -> None:
    answer = Answer(text="hi", finish_reason=TOOL_CALLS, usage=USAGE, model="m", choices=1, tool_call=True,
                    tool_calls=(ToolCall("t1", "f", '{"a":[1,2]}'),), reasoning="because")
    assert ANTHROPIC.decode(ANTHROPIC.answer_body(answer, "msg_1")) == answer
    assert ANTHROPIC.usage_in(ANTHROPIC.answer_body(answer, "msg_1")) == USAGE
    err = ANTHROPIC.decode(ANTHROPIC.error_body("slow down", 429)).error
    assert err == WireError("slow down", "rate_limit_error", 429)


def test_parse_request_reads_back_what_the_client_half_writes() -> None:
    req = LLMRequest(model="claude-x", messages=(
        Message("system", "be brief"), Message("user", "hi"),
        Message("assistant", "let me look", (ToolCall("c1", "f", '{"x":1}'), ToolCall("c2", "g", "{}"))),
        Message("tool", "42", tool_call_id="c1"), Message("tool", "43", tool_call_id="c2"), Message("user", "so?")),
        max_tokens=7, temperature=0.5, stream=True, tools=(Tool("f", "does f", {"type": "object"}),),
        extra={"top_k": 3})
    wire = ANTHROPIC.request(req, "sk-ant")
    body = orjson.loads(wire.body)
    assert (wire.path, body["system"], wire.headers["x-api-key"], wire.headers["anthropic-version"]) == (
        "/v1/messages", "be brief", "sk-ant", "2023-06-01")
    assert [b["type"] for b in body["messages"][2]["content"]] == ["tool_result", "tool_result"]
    assert ANTHROPIC.parse_request(wire.body, wire.path) == req
    assert ANTHROPIC.question(body) == "so?"


@pytest.mark.parametrize(("body", "says"), [(b"{", "malformed JSON"), (b'{"messages": []}', "max_tokens"),
                                            (b'{"max_tokens": 5, "messages": {}}', "'messages'"),
                                            (b'{"max_tokens": 0, "messages": []}', "'max_tokens'")])
def test_parse_request_refuses_bad_bodies(body: bytes, says: str) -> None:
    with pytest.raises(InputError, match=says):
        ANTHROPIC.parse_request(body, "/v1/messages")


def test_the_key_is_read_from_either_header() -> None:
    assert request_key({"x-api-key": "a"}) == "a" and request_key({"authorization": "Bearer b"}) == "b"
    assert request_key({}) is None


def test_it_is_registered() -> None:
    assert dialect("anthropic") is ANTHROPIC


# ------------------------------------------------------------------ the official SDK as the client
SCRIPT = Script(tool_calls=(ToolCall("toolu_1", "lookup", '{"city":"Paris"}'),), finish=TOOL_CALLS)


def _client(server: DialectServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-test", base_url=server.url, max_retries=0)


def test_the_sdk_reads_a_whole_message() -> None:
    with DialectServer(SCRIPT) as server:
        msg = _client(server).messages.create(model="claude-x", max_tokens=50, system="terse",
                                              messages=[{"role": "user", "content": "weather?"}])
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert (msg.content[0].thinking, msg.content[1].text) == ("let me think", "Hello world")
    assert (msg.content[2].id, msg.content[2].name, msg.content[2].input) == ("toolu_1", "lookup", {"city": "Paris"})
    assert (msg.stop_reason, msg.model) == ("tool_use", "claude-x")
    assert (msg.usage.input_tokens, msg.usage.output_tokens, msg.usage.cache_read_input_tokens,
            msg.usage.cache_creation_input_tokens) == (20, 9, 8, 2)
    seen = server.seen[0]
    # the SDK presents its key as x-api-key or, in newer versions, as a bearer token
    assert request_key(seen.headers) == "sk-test" and seen.headers["anthropic-version"]
    assert seen.request.messages == (Message("system", "terse"), Message("user", "weather?"))
    assert seen.request.max_tokens == 50 and not seen.request.stream


def test_the_sdk_streams_thinking_text_and_a_tool_call() -> None:
    with DialectServer(SCRIPT) as server, _client(server).messages.stream(
            model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "weather?"}]) as stream:
        kinds = [e.type for e in stream]
        msg = stream.get_final_message()
    assert kinds.count("text") == 2 and "thinking" in kinds and "input_json" in kinds
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert msg.content[1].text == "Hello world" and msg.content[2].input == {"city": "Paris"}
    assert (msg.stop_reason, msg.usage.input_tokens, msg.usage.output_tokens, msg.usage.cache_read_input_tokens) == (
        "tool_use", 20, 9, 8)
    assert server.seen[0].request.stream


def test_the_sdk_raises_a_mid_stream_overloaded_error_as_529() -> None:
    script = Script(stream_error=WireError("Overloaded", "overloaded_error", 529))
    with DialectServer(script) as server, pytest.raises(anthropic.APIStatusError) as caught, \
            _client(server).messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]) \
            as stream:
        stream.get_final_message()
    assert "overloaded_error" in str(caught.value)


def test_the_sdk_raises_an_error_answer_with_its_status() -> None:
    with DialectServer(Script(status_error=WireError("Overloaded", "overloaded_error", 529))) as server, \
            pytest.raises(anthropic.InternalServerError) as caught:
        _client(server).messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 529 and caught.value.body["error"]["type"] == "overloaded_error"
