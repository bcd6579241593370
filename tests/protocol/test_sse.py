"""The SSE decoder yields the same events for any split of the same bytes."""

from __future__ import annotations

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
