"""The OpenAI dialect's server half: what it writes, its own decoder (the client half) reads back."""

from __future__ import annotations

import orjson
import pytest

from loadbench.errors import InputError
from loadbench.protocol.dialect import Answer, LLMRequest, Message, Tool, ToolCall, WireError
from loadbench.protocol.openai import OPENAI
from loadbench.protocol.usage import Usage


@pytest.mark.parametrize("kind", ["chat", "completions"])
def test_a_stream_it_encodes_decodes_to_the_same_content_usage_and_end(kind: str) -> None:
    enc = OPENAI.encoder("m1", "id-1", kind)  # type: ignore[arg-type]
    usage = Usage(prompt_tokens=12, completion_tokens=3, cached_tokens=8, reasoning_tokens=1)
    raw = enc.head() + enc.content(' "quoted"\n') + enc.content(" two") + enc.tail("length", usage)
    for split in (1, 7, len(raw)):  # any split of the same bytes
        dec = OPENAI.decoder()
        got = [dec.feed(raw[i:i + split]) for i in range(0, len(raw), split)]
        texts = [c.text for d in got for c in d.content]
        assert texts == [' "quoted"\n', " two"]
        assert [d.usage for d in got if d.usage] == [usage]
        assert [d.finish_reason for d in got if d.finish_reason] == ["length"]
        assert any(d.done for d in got)
        assert [d.model for d in got if d.model] == ["m1"]


def test_the_head_is_not_content_and_reasoning_rides_its_own_channel() -> None:
    enc = OPENAI.encoder("m", "id")
    dec = OPENAI.decoder()
    assert dec.feed(enc.head()).content == ()
    assert [(c.text, c.channel) for c in dec.feed(enc.content("think", "reasoning")).content] == [
        ("think", "reasoning")]


def test_a_mid_stream_error_decodes_as_the_error() -> None:
    enc = OPENAI.encoder("m", "id")
    decoded = OPENAI.decoder().feed(enc.head() + enc.error(WireError("overloaded", "server_error", 503)))
    assert decoded.error is not None and decoded.error.message == "overloaded"


def test_a_whole_answer_it_writes_decodes_back() -> None:
    answer = Answer(text="hello", finish_reason="stop", usage=Usage(5, 2), model="m",
                    tool_calls=(ToolCall("c1", "lookup", '{"id": 3}'),))
    back = OPENAI.decode(OPENAI.answer_body(answer, "r1"))
    assert (back.text, back.finish_reason, back.usage, back.model, back.tool_call) == (
        "hello", "stop", Usage(5, 2), "m", True)


def test_parse_request_reads_back_what_the_client_half_writes() -> None:
    req = LLMRequest(model="m", messages=(Message("system", "be brief"), Message("user", "hi"),
                                          Message("assistant", "", (ToolCall("c1", "f", "{}"),)),
                                          Message("tool", "42", tool_call_id="c1")),
                     max_tokens=7, temperature=0.5, stream=True, tools=(Tool("f", "does f", {"type": "object"}),),
                     extra={"seed": 3})
    wire = OPENAI.request(req)
    assert orjson.loads(wire.body)["tools"][0]["function"]["name"] == "f"
    back = OPENAI.parse_request(wire.body, "/v1" + wire.path)
    assert back == req


def test_parse_request_tells_a_text_completion_by_its_path() -> None:
    back = OPENAI.parse_request(b'{"model": "m", "prompt": "once upon", "max_tokens": 4}', "/v1/completions")
    assert (back.prompt, back.kind, back.max_tokens, back.stream) == ("once upon", "completions", 4, False)


@pytest.mark.parametrize(("body", "says"), [
    (b"{not json", "malformed JSON"), (b"[]", "JSON object"), (b'{"messages": "hi"}', "'messages'"),
    (b'{"messages": [], "max_tokens": 0}', "'max_tokens'"), (b'{"messages": [], "stream": "yes"}', "'stream'")])
def test_parse_request_refuses_bad_bodies_with_a_message(body: bytes, says: str) -> None:
    with pytest.raises(InputError, match=says):
        OPENAI.parse_request(body, "/v1/chat/completions")
