"""The SSE decoder yields the same events for any split of the same bytes, and its single-event path
(the common read) what its line loop yields."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.protocol.sse import SSEDecoder

payload = st.binary(min_size=0, max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b)
line_end = st.sampled_from([b"\n", b"\r\n", b"\r"])


def _encode(events: list[bytes], ends: list[bytes]) -> bytes:
    out = b""
    for i, ev in enumerate(events):
        end = ends[i % len(ends)]
        out += b": keep-alive comment" + end if i % 3 == 2 else b""
        out += b"data: " + ev + end + end
    return out


def _decode(data: bytes, cuts: list[int]) -> list[bytes]:
    dec = SSEDecoder()
    out: list[bytes] = []
    last = 0
    for cut in sorted(set(cuts)):
        out += dec.feed(data[last:cut])
        last = cut
    out += dec.feed(data[last:])
    out += dec.close()
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(payload.filter(lambda b: b != b""), min_size=1, max_size=12),
       st.lists(line_end, min_size=1, max_size=3), st.data())
def test_any_split_yields_same_events(events: list[bytes], ends: list[bytes], data: st.DataObject) -> None:
    raw = _encode(events, ends)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=20))
    assert _decode(raw, cuts) == events
    # and byte by byte
    assert _decode(raw, list(range(len(raw)))) == events


def test_multiline_data_and_fields() -> None:
    dec = SSEDecoder()
    raw = b"event: x\nid: 7\ndata: a\ndata:b\n\nretry: 10\n\ndata: [DONE]\n\n"
    assert dec.feed(raw) == [b"a\nb", b"[DONE]"]


def test_final_event_without_blank_line_is_dispatched_on_close() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: last") == []
    assert dec.close() == [b"last"]


def test_crlf_split_across_reads_is_one_line_end() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: x\r") == []
    assert dec.feed(b"\n\r") == []
    assert dec.feed(b"\n") == [b"x"]


_END = st.sampled_from([b"\n", b"\r\n", b"\r"])
_VALUE = st.binary(max_size=12).filter(lambda b: b"\n" not in b and b"\r" not in b)


@st.composite
def _sse_event(draw: st.DrawFn) -> bytes:
    """One event in any of the shapes the fast path reads or must leave alone."""
    end = draw(_END)
    lines = []
    if draw(st.booleans()):
        lines.append(b"event: " + draw(_VALUE))
    if draw(st.booleans()):
        lines.append(b": comment")
    for value in draw(st.lists(_VALUE, min_size=1, max_size=2)):
        lines.append(draw(st.sampled_from([b"data: ", b"data:", b"data:  "])) + value)
    out = b"".join(line + (draw(_END) if draw(st.integers(0, 5)) == 0 else end) for line in lines)
    return out + end


def _sse_reads(feed: str, chunks: list[bytes]) -> list[list[bytes]]:
    dec = SSEDecoder()
    return [getattr(dec, feed)(c) for c in chunks] + [dec.close()]


@settings(max_examples=400, deadline=None)
@given(events=st.lists(_sse_event(), min_size=1, max_size=6), data=st.data())
def test_the_sse_single_event_path_gives_what_the_line_loop_gives(events: list[bytes], data: st.DataObject) -> None:
    raw = b"".join(events)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=5))))
    split = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    for chunks in (events, split):  # one event per read, and any split (several events per read too)
        assert _sse_reads("feed", chunks) == _sse_reads("_feed", chunks)


def test_the_sse_fast_path_reads_the_common_shapes() -> None:
    for raw in (b"data: x\n\n", b"event: e\ndata: x\n\n", b"data: x\r\n\r\n", b"event: e\r\ndata: x\r\n\r\n"):
        assert SSEDecoder().feed(raw) == [b"x"] == SSEDecoder()._feed(raw)
    raw = b"event: e\ndata: x\n\ndata:y\r\n\r\nevent: f\r\ndata: \r\n\r\n"  # several whole events in one read
    assert SSEDecoder().feed(raw) == [b"x", b"y", b""] == SSEDecoder()._feed(raw)
    raw = b"data: x\n\nevent: e\n\ndata: y\n\n"  # an event without data
    assert SSEDecoder().feed(raw) == [b"x", b"y"] == SSEDecoder()._feed(raw)
    # a lone CR ends a line: the event line hides no data line from the general path
    raw = b"event: a\rdata: z\r\ndata: x\r\n\r\n"
    assert SSEDecoder().feed(raw) == [b"z\nx"] == SSEDecoder()._feed(raw)


def test_the_sse_fast_path_leaves_every_other_shape_to_the_line_loop() -> None:
    """The event-by-event scan of a whole read: each shape it must not read itself, read as the line loop
    reads it."""
    for raw in (b"\n\n", b"event: e\n\n", b"event: e\n\ndata: x\n\n", b"data: a\n\n\ndata: b\n\n",
                b"data: a\ndata: b\n\n", b"event: e\ndata: a\nid: 1\n\n", b"data:\n\n", b"data\n\n",
                b"data: x\n\n: ping\n\n", b"data: x\n\ndata: y", b"data: x\n\ndata: y\n", b"event: e\n",
                b"event: e\nevent: f\ndata: x\n\n", b"data: x\r\n\r\ndata: y\r\n\n"):
        assert SSEDecoder().feed(raw) == SSEDecoder()._feed(raw), raw


def test_the_sse_fast_path_reads_large_named_events_without_the_line_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b'{"type":"response.completed","response":{"output":"' + b"x" * 5000 + b'"}}'
    raw = b"event: response.output_text.done\ndata: {}\n\nevent: response.completed\ndata: " + payload + b"\n\n"
    dec = SSEDecoder()

    def general(*_: object) -> list[bytes]:
        raise AssertionError("the line loop read a read of whole events")

    monkeypatch.setattr(SSEDecoder, "_feed", general)  # slots: patched on the class
    assert dec.feed(raw) == [b"{}", payload]
