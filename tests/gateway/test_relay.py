"""StreamRelay.feed without sockets: what is forwarded when, token timing, the event bound."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from loadbench.gateway.relay import StreamRelay

ROLE = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
DONE = b"data: [DONE]\n\n"


def delta(text: str) -> bytes:
    return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}) + b"\n\n"


def test_nothing_is_forwarded_before_the_first_token() -> None:
    relay = StreamRelay(max_event_bytes=1 << 20)
    assert relay.feed(ROLE, 10) == b""
    assert relay.feed(b": keep-alive comment\n\n", 20) == b""
    assert not relay.committed and relay.first_ns == 0
    out = relay.feed(delta("a"), 30)
    assert out == ROLE + b": keep-alive comment\n\n" + delta("a")  # held bytes first, in order
    assert relay.committed and relay.first_ns == 30


def test_split_events_are_forwarded_whole_and_byte_for_byte() -> None:
    stream = ROLE + delta("a") + delta("b") + DONE
    relay = StreamRelay(max_event_bytes=1 << 20)
    sent = [relay.feed(stream[i:i + 7], i) for i in range(0, len(stream), 7)]
    sent.append(relay.end())
    assert b"".join(sent) == stream
    assert all(p.endswith(b"\n\n") for p in sent if p)
    assert relay.error == "" and relay.tokens == 2


def test_token_timing_and_a_later_empty_content_is_not_a_token() -> None:
    relay = StreamRelay(max_event_bytes=1 << 20)
    relay.feed(ROLE, 0)
    relay.feed(delta("a"), 100)
    relay.feed(delta(""), 150)
    relay.feed(delta("b"), 300)
    relay.feed(DONE, 310)
    assert relay.end() == b""
    assert (relay.tokens, relay.first_ns, relay.last_ns, relay.gaps_ns) == (2, 100, 300, [200])


def test_an_event_larger_than_the_bound_fails_the_stream() -> None:
    relay = StreamRelay(max_event_bytes=1000)
    relay.feed(ROLE + delta("a"), 1)
    assert relay.feed(b'data: {"choices":[{"delta":{"content":"' + b"x" * 600, 2) == b""
    assert relay.error == ""
    assert relay.feed(b"x" * 600, 3) == b""
    assert relay.error == "sent an event larger than 1000 bytes"


def test_a_long_prefix_before_the_first_token_fails_the_stream() -> None:
    relay = StreamRelay(max_event_bytes=1000)
    for i in range(20):
        relay.feed(b": padding " + b"p" * 80 + b"\n\n", i)
    assert not relay.committed and relay.error == "sent more than 1000 bytes before the first token"


def test_an_end_without_done_is_an_error_and_an_end_without_tokens_is_not() -> None:
    broken = StreamRelay(max_event_bytes=1 << 20)
    broken.feed(ROLE + delta("a"), 1)
    assert broken.end() == b"" and broken.error == "closed the stream before [DONE]"
    empty = StreamRelay(max_event_bytes=1 << 20)
    empty.feed(ROLE, 1)
    assert empty.end() == b"" and empty.error == "closed the stream before [DONE]"
    finished = StreamRelay(max_event_bytes=1 << 20)
    finished.feed(ROLE, 1)
    finished.feed(DONE, 2)
    assert finished.end() == ROLE + DONE and finished.error == "" and finished.tokens == 0


def test_usage_is_read_from_the_tail() -> None:
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":7,"total_tokens":8}}\n\n'
    relay = StreamRelay(max_event_bytes=1 << 20)
    relay.feed(ROLE + delta("a"), 1)
    relay.feed(usage, 2)
    relay.feed(DONE, 3)
    relay.end()
    assert relay.usage_tokens() == 7


def test_the_capture_receives_exactly_what_was_forwarded() -> None:
    captured: list[bytes] = []
    relay = StreamRelay(max_event_bytes=1 << 20, capture=captured)
    out = [relay.feed(ROLE, 1), relay.feed(delta("a") + b"data: [DO", 2), relay.feed(b"NE]\n\n", 3)]
    out.append(relay.end())
    assert b"".join(captured) == b"".join(out) == ROLE + delta("a") + DONE


@given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=8), st.data())
def test_any_split_forwards_the_stream_unchanged(texts: list[str], data: st.DataObject) -> None:
    stream = ROLE + b"".join(delta(t) for t in texts) + DONE
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    relay = StreamRelay(max_event_bytes=1 << 20)
    sent = [relay.feed(stream[a:b], i) for i, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(stream)],
                                                                        strict=True))]
    sent.append(relay.end())
    assert b"".join(sent) == stream and relay.error == "" and relay.tokens == len(texts)


def test_a_compact_stream_is_counted_cheaply_and_a_spaced_or_reasoning_one_by_the_full_rule() -> None:
    spaced = b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
    reasoning = b'data: {"choices":[{"delta":{"reasoning":"hm"}}]}\n\n'
    for first, later, compact in ((delta("a"), delta("b"), True), (spaced, spaced, False),
                                  (reasoning, delta("b"), False)):
        relay = StreamRelay(max_event_bytes=1 << 20)
        relay.feed(ROLE, 0)
        relay.feed(first, 1)
        relay.feed(later, 2)
        relay.feed(delta(""), 3)
        assert (relay.compact, relay.tokens, relay.gaps_ns) == (compact, 2, [1])
