"""The OpenAI wire layer: byte-level helpers of the relay, and one content-delta rule for all."""

from __future__ import annotations

import json

import orjson
from hypothesis import given
from hypothesis import strategies as st

from loadbench.protocol.openai import (
    completion_tokens,
    content_deltas,
    content_deltas_compact,
    content_deltas_slow,
    error_event,
)
from loadbench.protocol.sse import complete_end
from tests.conftest import event_decoded


def ev(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def delta(text: str) -> bytes:
    return ev({"choices": [{"delta": {"content": text}}]})


def test_content_deltas_skips_role_and_empty_deltas() -> None:
    role = ev({"choices": [{"delta": {"role": "assistant", "content": ""}}]})
    assert content_deltas(role) == 0
    assert content_deltas(delta("hi") + delta("there")) == 2
    # generated text that looks like the key is escaped inside the JSON string
    assert content_deltas(delta('say "content":"x"')) == 1
    spaced = b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
    assert content_deltas(spaced) == 1


def test_complete_end() -> None:
    assert complete_end(b"data: x\n\ndata: y") == len(b"data: x\n\n")
    assert complete_end(b"data: x") == 0
    assert complete_end(b"data: x\r\n\r\ndata") == len(b"data: x\r\n\r\n")


def test_completion_tokens_from_the_tail() -> None:
    tail = ev({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 64, "total_tokens": 67}})
    assert completion_tokens(delta("x") + tail + b"data: [DONE]\n\n") == 64
    assert completion_tokens(delta("x")) is None
    assert completion_tokens(b'{"choices":[],"usage":null}') is None


def test_error_event_is_one_parseable_event() -> None:
    raw = error_event("upstream broke", 502)
    assert raw.startswith(b"data: ") and raw.endswith(b"\n\n")
    assert orjson.loads(raw[6:])["error"]["code"] == 502


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6), st.data())
def test_cutting_at_complete_end_keeps_whole_events(texts: list[str], data: st.DataObject) -> None:
    stream = b"".join(delta(t) for t in texts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    # the relay's hold-back rule: forward up to the last complete event, carry the rest
    carry = b""
    sent: list[bytes] = []
    for piece in pieces:
        buf = carry + piece
        end = complete_end(buf)
        sent.append(buf[:end])
        carry = buf[end:]
    assert carry == b""
    assert b"".join(sent) == stream
    assert all(p.endswith(b"\n\n") for p in sent if p)
    assert sum(content_deltas(p) for p in sent) == len(texts)


def test_a_later_empty_content_is_not_a_token() -> None:
    # the old relay subtracted empty deltas only before the first token, so this counted as one
    empty = ev({"choices": [{"delta": {"content": ""}}]})
    assert content_deltas(delta("a") + empty) == 1
    assert content_deltas(empty) == 0


_CHUNKS = [
    {"choices": [{"delta": {"role": "assistant", "content": ""}}]},
    {"choices": [{"delta": {"content": ""}}]},
    {"choices": [{"delta": {"content": None}}]},
    {"choices": [{"delta": {"content": "x"}}]},
    {"choices": [{"delta": {"reasoning_content": "think"}}]},
    {"choices": [{"delta": {"reasoning": "think"}}]},
    {"choices": [{"delta": {"content": "", "reasoning_content": ""}}]},
    {"choices": [{"delta": {}, "finish_reason": "stop"}]},
    {"choices": [{"text": "", "index": 0}]},
    {"choices": [{"text": " tok1", "index": 0}]},
    {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}},
    {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}]}}]},
    {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}}]},
]


def test_the_relay_and_the_worker_apply_the_same_content_rule() -> None:
    for chunk in _CHUNKS:
        for raw in (orjson.dumps(chunk), b'{"choices": [' + orjson.dumps(chunk["choices"])[1:-1] + b"]}"):
            assert (content_deltas(b"data: " + raw + b"\n\n") > 0) == bool(event_decoded(raw).content), raw


_VALUE = st.one_of(st.none(), st.just(""), st.text(max_size=6), st.just('"content":"x'))
_DELTA = st.dictionaries(st.sampled_from(["role", "content", "reasoning_content", "reasoning"]), _VALUE, max_size=3)
_CHOICE = st.one_of(st.fixed_dictionaries({"index": st.just(0), "delta": _DELTA}),
                    st.fixed_dictionaries({"index": st.just(0), "text": _VALUE}))
_CHUNK = st.fixed_dictionaries({"choices": st.lists(_CHOICE, max_size=2)})


@given(st.lists(_CHUNK, min_size=1, max_size=4), st.booleans())
def test_the_fast_count_agrees_with_the_regular_expression(chunks: list[dict], spaced: bool) -> None:
    raw = b"".join(b"data: " + (json.dumps(c).encode() if spaced else orjson.dumps(c)) + b"\n\n" for c in chunks)
    assert content_deltas(raw) == content_deltas_slow(raw)
    assert (content_deltas(raw) > 0) == any(event_decoded(orjson.dumps(c)).content for c in chunks)


_COMPACT_DELTA = st.dictionaries(st.sampled_from(["role", "content", "reasoning_content"]), _VALUE, max_size=3)
_COMPACT_CHUNK = st.fixed_dictionaries({"choices": st.lists(
    st.fixed_dictionaries({"index": st.just(0), "delta": _COMPACT_DELTA}), max_size=2)})


@given(st.lists(_COMPACT_CHUNK, min_size=1, max_size=4))
def test_the_compact_count_is_exact_for_compact_content_deltas(chunks: list[dict]) -> None:
    raw = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)
    assert content_deltas_compact(raw) == content_deltas(raw)
