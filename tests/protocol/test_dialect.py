"""The dialect interface and the openai dialect: any chunking of a stream decodes to the same events,
the decoder applies the one content-delta rule, per-provider data builds the request, the registry
names what it knows."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.errors import InputError
from loadbench.protocol.dialect import INVALID, Auth, Content, Decoded, LLMRequest, Message, StreamDecoder, WireData
from loadbench.protocol.openai import (
    OPENAI,
    OPENAI_DATA,
    OpenAIDialect,
    answer_text,
    content_deltas,
    question_text,
    stream_text,
    usage_in,
)
from loadbench.protocol.registry import dialect, names, register
from loadbench.protocol.usage import Usage
from tests.conftest import event_decoded


def ev(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _all(decoder: StreamDecoder, pieces: list[bytes]) -> list[Decoded]:
    out = [decoder.feed(p) for p in pieces]
    out.append(decoder.feed(b"", end_of_stream=True))
    return out


def _merged(fed: list[Decoded]) -> tuple[object, ...]:
    """What a caller keeps of a whole stream: every content event in order, the last usage, the first
    model and error, the last finish reason, whether the end marker came."""
    content = [c for d in fed for c in d.content]
    usage = [d.usage for d in fed if d.usage is not None]
    model = [d.model for d in fed if d.model is not None]
    finish = [d.finish_reason for d in fed if d.finish_reason is not None]
    error = [d.error for d in fed if d.error is not None]
    return (content, usage[-1] if usage else None, model[0] if model else None, finish[-1] if finish else None,
            error[0] if error else None, any(d.tool_call for d in fed), any(d.done for d in fed))


_TEXT = st.text(max_size=6)
_DELTA = st.one_of(
    st.builds(lambda t: {"content": t}, _TEXT),
    st.builds(lambda t: {"reasoning_content": t}, _TEXT),
    st.builds(lambda t: {"role": "assistant", "content": t}, _TEXT),
    st.just({"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}),
)
_CHUNK = st.one_of(
    st.builds(lambda d, f: {"model": "m1", "choices": [{"index": 0, "delta": d, "finish_reason": f}]},
              _DELTA, st.sampled_from([None, "stop"])),
    st.builds(lambda t: {"choices": [{"index": 0, "text": t}]}, _TEXT),
    st.builds(lambda p, c: {"choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c}},
              st.integers(0, 99), st.integers(0, 99)),
    st.just({"error": {"message": "overloaded", "type": "server_error"}}),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_CHUNK, max_size=8), st.booleans(), st.sampled_from([b"\n", b"\r\n"]), st.data())
def test_any_chunking_of_a_stream_decodes_to_the_same_events(chunks: list[dict], done: bool, end: bytes,
                                                             data: st.DataObject) -> None:
    raw = b"".join(ev(c) for c in chunks).replace(b"\n", end) + (b"data: [DONE]" + end * 2 if done else b"")
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=12))))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    whole = _merged(_all(OPENAI.decoder(), [raw]))
    assert _merged(_all(OPENAI.decoder(), pieces)) == whole
    assert _merged(_all(OPENAI.decoder(), [raw[i:i + 1] for i in range(len(raw))])) == whole
    # and the events are the ones the chunks carry, by the one content-delta rule
    content, usage, _, _, error, tool, ended = whole
    assert [c.text for c in content] == [t for c in chunks if "error" not in c
                                          for t in [_text_of(c)] if t]
    assert len(content) == sum(1 for c in chunks if "error" not in c and event_decoded(orjson.dumps(c)).content)
    assert (content_deltas(raw) > 0) == bool(content)
    reports = [c["usage"] for c in chunks if "usage" in c]
    assert usage == (Usage(reports[-1]["prompt_tokens"], reports[-1]["completion_tokens"]) if reports else None)
    assert (error is not None) == any("error" in c for c in chunks)
    assert tool == any("tool_calls" in c["choices"][0].get("delta", {}) for c in chunks if c.get("choices"))
    assert ended == done


def _text_of(chunk: dict) -> str:
    choice = chunk["choices"][0] if chunk.get("choices") else {}
    delta = choice.get("delta", {})
    arguments = "".join(c["function"]["arguments"] for c in delta.get("tool_calls", ()))  # the "tool" channel
    return delta.get("content") or delta.get("reasoning_content") or choice.get("text") or arguments


def test_content_events_say_their_channel_and_a_stream_cut_mid_event_drops_it() -> None:
    dec = OPENAI.decoder()
    fed = dec.feed(ev({"choices": [{"delta": {"role": "assistant", "content": ""}}]})
                   + ev({"choices": [{"delta": {"reasoning_content": "think"}}]})
                   + ev({"choices": [{"delta": {"content": "Hi"}}]}) + b'data: {"choices": [{"delta": {"con')
    assert fed.content == (Content("think", "reasoning"), Content("Hi"))
    assert dec.feed(b"", end_of_stream=True) == Decoded()  # an incomplete event is not an event (SSE)
    assert stream_text(ev({"choices": [{"delta": {"reasoning_content": "x"}}]}) + ev(
        {"choices": [{"delta": {"content": "a"}}]}) + ev({"choices": [{"text": "b"}]})) == "ab"


def test_a_whole_answer_decodes_to_its_text_usage_and_errors() -> None:
    body = orjson.dumps({"model": "m", "choices": [{"message": {"role": "assistant", "content": "hello"},
                                                    "finish_reason": "length"}],
                         "usage": {"prompt_tokens": 4, "completion_tokens": 1,
                                   "prompt_tokens_details": {"cached_tokens": 2}}})
    answer = OPENAI.decode(body)
    assert (answer.text, answer.finish_reason, answer.model, answer.choices) == ("hello", "length", "m", 1)
    assert answer.usage == Usage(prompt_tokens=4, completion_tokens=1, cached_tokens=2)
    assert answer_text(body) == "hello"
    assert usage_in(body) == answer.usage
    assert OPENAI.decode(b'{"choices": []}').usage is None
    assert OPENAI.decode(b"<html>").error is not None and OPENAI.decode(b"<html>").error.kind == INVALID
    assert answer_text(b"<html>") is None and answer_text(b'{"x": 1}') is None
    err = OPENAI.decode(b'{"error": {"message": "bad key", "type": "authentication_error"}}').error
    assert err is not None and (err.message, err.kind) == ("bad key", "authentication_error")


def test_an_error_answer_maps_to_its_message_and_type() -> None:
    mapped = OPENAI.error(429, OPENAI.error_body("slow down", 429))
    assert (mapped.message, mapped.kind, mapped.status) == ("slow down", "rate_limit_error", 429)
    plain = OPENAI.error(502, b"Bad Gateway")
    assert (plain.message, plain.kind) == ("Bad Gateway", "server_error")


def test_the_question_is_the_last_user_message_or_the_prompt() -> None:
    body = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "first"},
                         {"role": "assistant", "content": "a"}, {"role": "user", "content": "second"}]}
    assert question_text(body) == "second" == OPENAI.question(body)
    assert question_text({"prompt": "p"}) == "p"
    assert question_text({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}) == ""


def test_the_request_is_built_from_loadbench_own_request_and_the_provider_data() -> None:
    req = LLMRequest("gpt", (Message("user", "hi"),), max_tokens=8, temperature=0.0, stream=True,
                     extra={"seed": 1})
    wire = OPENAI.request(req, "sk-1")
    assert wire.path == "/chat/completions"
    assert wire.headers == {"Content-Type": "application/json", "Accept": "text/event-stream",
                            "Authorization": "Bearer sk-1"}
    assert orjson.loads(wire.body) == {"model": "gpt", "stream": True, "messages": [{"role": "user", "content": "hi"}],
                                       "max_tokens": 8, "temperature": 0.0,
                                       "stream_options": {"include_usage": True}, "seed": 1}
    completion = OPENAI.request(LLMRequest("gpt", prompt="once", stream=False))
    assert completion.path == "/completions" and "Authorization" not in completion.headers
    assert orjson.loads(completion.body) == {"model": "gpt", "stream": False, "prompt": "once"}
    # the target's own headers go in, but never over the key
    assert OPENAI.headers("k", stream=False, extra={"Authorization": "x", "X-Team": "a"}) == {
        "Content-Type": "application/json", "Authorization": "Bearer k", "X-Team": "a"}

    # another provider of the same body format is the same code with other data
    azure_like = OpenAIDialect(WireData(
        paths={"chat": "/openai/deployments/{model}/chat/completions?api-version=2024-10-21"},
        auth=Auth("header", "api-key", ""), headers={"X-Fixed": "1"}))
    wire = azure_like.request(replace(req, model="my deploy"), "az-key")
    assert wire.path == "/openai/deployments/my%20deploy/chat/completions?api-version=2024-10-21"
    assert wire.headers["api-key"] == "az-key" and wire.headers["X-Fixed"] == "1"
    assert "Authorization" not in wire.headers
    query_key = OpenAIDialect(WireData(paths=OPENAI_DATA.paths, auth=Auth("query", "key", "")))
    assert query_key.url("http://h/v1/", "chat", api_key="a&b") == "http://h/v1/chat/completions?key=a%26b"
    assert query_key.request(req, "k").headers.get("Authorization") is None


def test_the_registry_names_what_it_knows() -> None:
    assert dialect("openai") is OPENAI and "openai" in names()
    with pytest.raises(InputError, match=r"unknown protocol 'nope'.*openai"):
        dialect("nope")
    with pytest.raises(ValueError, match="already registered"):
        register(OpenAIDialect(OPENAI_DATA))
    assert register(OPENAI) is OPENAI  # the same one again is no conflict


def test_usage_in_reads_only_the_last_usage_object_of_a_tail() -> None:
    tail = (b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'
            b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,'
            b'"prompt_tokens_details":{"cached_tokens":2}}}\n\ndata: [DONE]\n\n')
    assert usage_in(tail) == Usage(prompt_tokens=7, completion_tokens=3, cached_tokens=2) == OPENAI.usage_in(tail)
    # usage before the choices, and an answer whose text holds braces and the word usage
    first = orjson.dumps({"usage": {"prompt_tokens": 4, "completion_tokens": 2,
                                    "prompt_tokens_details": {"cached_tokens": 1}, "total_tokens": 6},
                          "choices": [{"message": {"content": 'a {"usage": {"prompt_tokens": 99}} }}'}}]})
    assert usage_in(first) == Usage(prompt_tokens=4, completion_tokens=2, cached_tokens=1)
    for none in (b"data: [DONE]\n\n", b'{"usage": broken', b"", b'{"choices": [], "usage": null, "x": {"a": 5}}',
                 b'{"usage": {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 1}'):
        assert usage_in(none) is None, none
