"""Answer capture (only clean streams are cacheable) and replay (well-formed SSE / JSON)."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.cache import CachedAnswer, StreamCapture, answer_from_json, replay_json, replay_sse

ANSWER = CachedAnswer(text="The quick brown fox jumps over the lazy dog. " * 3, finish_reason="stop",
                      usage={"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}, model="up")


def parse_sse(raw: bytes) -> list[Any]:
    """Strict parse: every event is exactly one ``data:`` line followed by a blank line."""
    assert raw.endswith(b"\n\n")
    events: list[Any] = []
    for block in raw[:-2].split(b"\n\n"):
        assert block.startswith(b"data: ") and b"\n" not in block, block
        payload = block[6:]
        events.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    return events


@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_replay_is_well_formed(include_usage: bool) -> None:
    raw = b"".join(replay_sse(ANSWER, fmt="chat", model="vm", response_id="chatcmpl-1", created_s=7,
                              include_usage=include_usage))
    events = parse_sse(raw)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-1" and c["model"] == "vm"
               for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    if include_usage:
        usage_chunk = chunks.pop()
        assert usage_chunk["choices"] == []
        assert usage_chunk["usage"] == ANSWER.usage
    finish = chunks.pop()
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["choices"][0]["delta"] == {}
    content = chunks[1:]
    assert len(content) > 3
    assert all(c["choices"][0]["finish_reason"] is None for c in content)
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == ANSWER.text


def test_completions_replay_is_well_formed() -> None:
    events = parse_sse(b"".join(replay_sse(ANSWER, fmt="completions", model="vm", response_id="cmpl-1",
                                           created_s=7, include_usage=True)))
    assert events[-1] == "[DONE]"
    usage, finish, content = events[-2], events[-3], events[:-3]
    assert usage["usage"]["total_tokens"] == 42 and usage["choices"] == []
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert all(c["object"] == "text_completion" for c in events[:-1])
    assert "".join(c["choices"][0]["text"] for c in content) == ANSWER.text


def test_replayed_stream_captures_back_to_the_same_answer() -> None:
    for fmt in ("chat", "completions"):
        capture = StreamCapture()
        for piece in replay_sse(ANSWER, fmt=fmt, model="up", response_id="x", created_s=1,  # type: ignore[arg-type]
                                include_usage=True):
            capture.feed(piece)
        got = capture.result()
        assert got is not None
        assert (got.text, got.finish_reason, got.usage) == (ANSWER.text, "stop", ANSWER.usage)


def test_json_replay() -> None:
    chat = replay_json(ANSWER, fmt="chat", model="vm", response_id="c", created_s=1)
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": ANSWER.text}
    assert chat["usage"]["total_tokens"] == 42
    assert answer_from_json(chat) is not None
    text = replay_json(ANSWER, fmt="completions", model="vm", response_id="c", created_s=1)
    assert text["choices"][0]["text"] == ANSWER.text
    assert answer_from_json(text).text == ANSWER.text  # type: ignore[union-attr]


def _stream(answer: CachedAnswer) -> bytes:
    return b"".join(replay_sse(answer, fmt="chat", model="up", response_id="x", created_s=1,
                               include_usage=True))


@given(cuts=st.lists(st.integers(0, 2000), max_size=30))
@settings(max_examples=100, deadline=None)
def test_capture_is_independent_of_chunking(cuts: list[int]) -> None:
    raw = _stream(ANSWER)
    capture = StreamCapture()
    points = sorted({c % len(raw) for c in cuts} | {0, len(raw)})
    for a, b in itertools.pairwise(points):
        capture.feed(raw[a:b])
    got = capture.result()
    assert got is not None and got.text == ANSWER.text


@given(cut=st.integers(1, 10_000))
@settings(max_examples=100, deadline=None)
def test_cut_stream_is_never_cacheable(cut: int) -> None:
    raw = _stream(ANSWER)
    cut = cut % (len(raw) - len(b"data: [DONE]\n\n"))  # anything before the sentinel is complete
    capture = StreamCapture()
    capture.feed(raw[:cut])
    assert capture.result() is None


@pytest.mark.parametrize("poison", [
    b'data: {"error": {"message": "upstream overloaded"}}\n\n',
    b'data: {"choices": [{"index": 1, "delta": {"content": "x"}}]}\n\n',
    b'data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"id": "t"}]}}]}\n\n',
    b"data: {not json\n\n",
])
def test_error_events_poison_the_capture(poison: bytes) -> None:
    raw = _stream(ANSWER)
    head, tail = raw.split(b"\n\n", 2)[:2], raw.split(b"\n\n", 2)[2]
    capture = StreamCapture()
    capture.feed(b"\n\n".join(head) + b"\n\n" + poison + tail)
    assert capture.result() is None


def test_relay_failure_and_bad_finish_reasons_are_not_cacheable() -> None:
    capture = StreamCapture()
    capture.feed(_stream(ANSWER))
    capture.fail()
    assert capture.result() is None
    for reason in ("content_filter", "tool_calls"):
        raw = _stream(CachedAnswer(text="x", finish_reason=reason))
        capture = StreamCapture()
        capture.feed(raw)
        assert capture.result() is None


@pytest.mark.parametrize("body", [
    {"choices": [{"message": {"content": "a"}, "finish_reason": "length"},
                 {"message": {"content": "b"}, "finish_reason": "stop"}]},
    {"choices": [{"message": {"content": None, "tool_calls": [{}]}, "finish_reason": "tool_calls"}]},
    {"error": {"message": "nope"}},
    {"choices": [{"message": {"content": "cut"}, "finish_reason": None}]},
])
def test_answer_from_json_refuses_unusable_bodies(body: dict[str, Any]) -> None:
    assert answer_from_json(body) is None
