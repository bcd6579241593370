"""``aws.FrameReader`` reads the common frame itself and hands anything else to botocore: whatever the
bytes and their split, it accepts exactly the frames botocore's ``EventStreamBuffer`` accepts, at the
same read, with the same headers and payloads, and refuses where botocore refuses (bad CRCs, impossible
lengths, duplicate headers), with botocore's own message."""

from __future__ import annotations

import struct
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer, ParserError
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.protocol.aws import FrameReader, frame
from loadbench.protocol.bedrock import BEDROCK
from loadbench.protocol.dialect import STOP


def raw_frame(head: bytes, payload: bytes, total_bytes: int | None = None) -> bytes:
    """A message whose headers section is ``head`` as given (any bytes), both CRCs right."""
    total = 16 + len(head) + len(payload) if total_bytes is None else total_bytes
    prelude = struct.pack(">II", total, len(head))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


_name = st.text(min_size=1, max_size=8)
_strings = st.dictionaries(_name, st.text(max_size=12), max_size=4)
_frame = st.one_of(
    st.builds(frame, _strings, st.binary(max_size=40)),  # the common frame: string headers
    st.builds(raw_frame, st.binary(max_size=24), st.binary(max_size=20)),  # any headers section
    st.builds(raw_frame, st.sampled_from([b"\x01a\x00", b"\x01a\x01\x01b\x06\x00\x02xy", b"\x01a\x09" + b"u" * 16,
                                          b"\x01a\x07\x00\x01x\x01a\x07\x00\x01y", b"\x01a\x07\x00\x09x"]),
              st.binary(max_size=8)),  # other header types, a repeated name, a value running past its end
    st.builds(raw_frame, st.just(b""), st.just(b"p"), st.sampled_from([4, 12, 15, 20, 0x7FFFFFFF])),  # bad lengths
)


def botocore_reads(raw: bytes, cuts: list[int]) -> list[object]:
    """Per read: the (headers, payload) botocore completes and its verdict (None: no error)."""
    buf, out, last = EventStreamBuffer(), [], 0
    for cut in [*sorted(set(cuts)), len(raw)]:
        buf.add_data(raw[last:cut])
        last = cut
        got: list[object] = []
        try:
            for m in buf:  # one by one: the frames before a bad one still count
                got.append((m.headers, m.payload))
        except ParserError as exc:
            return [*out, (got, f"bad event-stream frame: {exc}")]
        except Exception as exc:  # botocore's own crash on malformed headers is the reference too
            return [*out, type(exc).__name__]
        out.append((got, None))
    return out


def reader_reads(raw: bytes, cuts: list[int]) -> list[object]:
    reader, out, last = FrameReader(), [], 0
    for cut in [*sorted(set(cuts)), len(raw)]:
        try:
            frames, bad = reader.feed(raw[last:cut])
        except Exception as exc:
            return [*out, type(exc).__name__]
        last = cut
        if bad is not None:
            return [*out, (frames, str(bad))]
        out.append((frames, None))
    return out


@settings(max_examples=400, deadline=None)
@given(frames=st.lists(_frame, min_size=1, max_size=5), flips=st.lists(st.integers(0, 10_000), max_size=2),
       data=st.data())
def test_it_accepts_and_refuses_exactly_what_botocore_does_at_the_same_read(frames: list[bytes], flips: list[int],
                                                                             data: st.DataObject) -> None:
    raw = bytearray(b"".join(frames))
    for at in flips:  # a corrupt byte anywhere: a CRC, a length, a header, a payload
        raw[at % len(raw)] ^= 0x5A
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=6))
    assert reader_reads(bytes(raw), cuts) == botocore_reads(bytes(raw), cuts)


def test_a_whole_stream_in_one_read_and_byte_by_byte_reads_botocores_frames() -> None:
    enc = BEDROCK.encoder("m", "r")
    raw = enc.head() + b"".join(enc.content(f"t{i}") for i in range(20)) + enc.tail(STOP, None)
    want = botocore_reads(raw, [])  # messageStart, 20 deltas, contentBlockStop, messageStop, metadata
    assert want[-1][1] is None and len(want[-1][0]) == 24  # type: ignore[index]
    assert reader_reads(raw, []) == want
    assert reader_reads(raw, list(range(len(raw)))) == botocore_reads(raw, list(range(len(raw))))


@pytest.mark.parametrize("at", [2, 9, 14, 40, -2])  # a length, the prelude CRC, a header, the payload, the CRC
def test_a_flipped_byte_is_refused_with_botocores_message(at: int) -> None:
    raw = bytearray(frame({":event-type": "contentBlockDelta"}, b'{"delta":{"text":"hi"}}'))
    raw[at] ^= 1
    frames, bad = FrameReader().feed(bytes(raw))
    assert frames == [] and bad is not None
    assert botocore_reads(bytes(raw), []) == [([], str(bad))]


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(_frame, min_size=1, max_size=6), flips=st.lists(st.integers(0, 10_000), max_size=2),
       data=st.data())
def test_whole_reads_a_single_frame_read_as_feed_does_and_consumes_nothing_else(
        frames: list[bytes], flips: list[int], data: st.DataObject) -> None:
    reads = [bytearray(f) for f in frames]
    for at in flips:  # a corrupt byte in one of the reads
        read = reads[at % len(reads)]
        read[at % len(read)] ^= 0x5A
    # some reads cut in two, some joined: whole() must refuse what is not exactly one frame
    if data.draw(st.booleans()) and len(reads) > 1:
        reads[0:2] = [reads[0] + reads[1]]
    cut = data.draw(st.integers(0, len(reads[-1])))
    reads[-1:] = [reads[-1][:cut], reads[-1][cut:]]
    def fed(reader: FrameReader, read: bytes) -> object:
        try:
            frames, bad = reader.feed(read)
        except Exception as exc:  # botocore's own crash on malformed headers is the reference
            return type(exc).__name__
        return frames, str(bad)

    fast, general = FrameReader(), FrameReader()
    for read in map(bytes, reads):
        one = fast.whole(read)
        want = fed(general, read)
        assert (([one], "None") if one is not None else fed(fast, read)) == want
        if not isinstance(want, tuple) or want[1] != "None":
            break


def test_whole_takes_a_repeated_frame_and_refuses_a_first_one_or_a_bad_crc() -> None:
    headers = {":event-type": "contentBlockDelta", "x-test": "whole"}  # a section no other test reads
    one = frame(headers, b'{"delta":{"text":"hi"}}')
    reader = FrameReader()
    assert reader.whole(one) is None  # a header section not read yet: feed reads it
    assert reader.feed(one) == ([(headers, b'{"delta":{"text":"hi"}}')], None)
    assert reader.whole(one) == (headers, b'{"delta":{"text":"hi"}}')
    assert FrameReader().whole(one) == (headers, b'{"delta":{"text":"hi"}}')  # read once a process
    for at in (9, -2):  # the prelude CRC, the message CRC
        bad = bytearray(one)
        bad[at] ^= 1
        assert reader.whole(bytes(bad)) is None
    assert reader.whole(one[:-1]) is None and reader.whole(one + one) is None
