"""The openai dialect reads tool calls: a whole answer's calls, and a stream's argument pieces as content
on the "tool" channel with each call handed over whole, once, in any chunking."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.protocol.dialect import Answer, Content, ToolCall
from loadbench.protocol.openai import OPENAI, OpenAIStreamEncoder, answer_body, content_deltas
from loadbench.protocol.usage import Usage

CALLS = (ToolCall("call_a", "get_order", '{"order_id": "A100"}'), ToolCall("call_b", "refund", '{"amount": 5}'))


def test_a_whole_answer_returns_its_tool_calls_in_order() -> None:
    body = answer_body(Answer(text="", finish_reason="tool_calls", usage=Usage(3, 4), model="m", tool_calls=CALLS),
                       "id1")
    answer = OPENAI.decode(body)
    assert answer.tool_calls == CALLS and answer.tool_call and answer.finish_reason == "tool_calls"


def test_a_whole_answer_with_arguments_as_an_object_or_a_legacy_function_call() -> None:
    body = orjson.dumps({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "function_call": {"name": "f", "arguments": {"x": 1}}}}]})
    assert OPENAI.decode(body).tool_calls == (ToolCall("call_0", "f", '{"x":1}'),)


def _stream_of_pieces() -> bytes:
    """Two parallel calls, as OpenAI streams them: id and name first, the arguments in pieces."""
    def chunk(delta: dict, finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({"model": "m", "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"

    out = chunk({"role": "assistant", "content": None})
    for i, call in enumerate(CALLS):
        out += chunk({"tool_calls": [{"index": i, "id": call.id, "type": "function",
                                      "function": {"name": call.name, "arguments": ""}}]})
        half = len(call.arguments) // 2
        for piece in (call.arguments[:half], call.arguments[half:]):
            out += chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    return out + chunk({}, "tool_calls") + b"data: [DONE]\n\n"


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_streamed_calls_are_assembled_whole_in_any_chunking(data: st.DataObject) -> None:
    raw = _stream_of_pieces()
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=10))))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    dec = OPENAI.decoder()
    fed = [dec.feed(p) for p in pieces] + [dec.feed(b"", end_of_stream=True)]
    assert [c for d in fed for c in d.tool_calls] == list(CALLS)  # once, whole, in index order
    tool_text = [c.text for d in fed for c in d.content]
    assert all(c.channel == "tool" for d in fed for c in d.content)
    assert "".join(tool_text) == "".join(c.arguments for c in CALLS)
    assert content_deltas(raw) == len(tool_text) == 4  # the relay's byte count agrees with the decoder
    assert any(d.tool_call for d in fed) and [d.finish_reason for d in fed if d.finish_reason] == ["tool_calls"]


def test_the_encoder_s_whole_call_chunks_decode_back_to_the_calls() -> None:
    enc = OpenAIStreamEncoder("m", "r1", created=0)
    raw = enc.head() + b"".join(enc.tool_call(c) for c in CALLS) + enc.tail("tool_calls", Usage(1, 2))
    fed = OPENAI.decoder().feed(raw, end_of_stream=True)
    assert fed.tool_calls == CALLS and fed.done
    assert fed.content == tuple(Content(c.arguments, "tool") for c in CALLS)


def test_a_stream_cut_before_its_finish_hands_over_the_call_under_way() -> None:
    enc = OpenAIStreamEncoder("m", "r1", created=0)
    dec = OPENAI.decoder()
    assert dec.feed(enc.head() + enc.tool_call(CALLS[0])).tool_calls == ()
    assert dec.feed(b"", end_of_stream=True).tool_calls == (CALLS[0],)


def test_a_text_only_stream_has_no_tool_content_or_calls() -> None:
    enc = OpenAIStreamEncoder("m", "r1", created=0)
    fed = OPENAI.decoder().feed(enc.head() + enc.content("hi") + enc.tail("stop", None), end_of_stream=True)
    assert fed.content == (Content("hi"),) and fed.tool_calls == () and not fed.tool_call
