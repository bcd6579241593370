"""The decoders' answer-chunk template (``protocol.chunktemplate``): a read is taken by the template only
when the decoder's general path would read it as the same one answer piece, for every SSE dialect, in
any split, with any text; a stream whose chunks differ in more than the text stops trying."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.protocol.chunktemplate import LEARN_TRIES, ChunkTemplate, _alike, _alike_end, _number_apart
from loadbench.protocol.dialect import STOP, Content, Decoded, StreamDecoder, ToolCall
from loadbench.protocol.registry import dialect
from loadbench.protocol.usage import Usage

SSE_DIALECTS = ("openai", "azure", "anthropic", "openai-responses", "gemini")
# texts that JSON writes with escapes, or that also appear elsewhere in a chunk (the model, the id)
_TEXT = st.one_of(st.text(max_size=8), st.sampled_from(['"', "\\", "m-1", "r-1", "\u2028", "\n\n", "data: x",
                                                        "tok", "a\"b\\c", "é", "0"]))


def _general(name: str) -> StreamDecoder:
    dec = dialect(name).decoder()
    dec._template.active = False  # type: ignore[attr-defined]
    return dec


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(SSE_DIALECTS), texts=st.lists(_TEXT, max_size=12),
       reasoning=st.lists(st.integers(0, 11), max_size=2), call=st.booleans(), data=st.data())
def test_the_template_reads_every_stream_as_the_general_path_does(
        name: str, texts: list[str], reasoning: list[int], call: bool, data: st.DataObject) -> None:
    enc = dialect(name).encoder("m-1", "r-1")
    events = [enc.head()] + [enc.content(t, "reasoning" if i in reasoning else "answer")  # type: ignore[arg-type]
                             for i, t in enumerate(texts)]
    if call:
        events.insert(data.draw(st.integers(1, len(events))), enc.tool_call(ToolCall("c1", "f", '{"a":1}')))
    events.append(enc.tail(STOP, Usage(3, 4)))
    raw = b"".join(events)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=4))))
    split = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    for reads in (events, split):
        fast, general = dialect(name).decoder(), _general(name)
        assert [fast.feed(c) for c in reads] + [fast.feed(b"", True)] == \
            [general.feed(c) for c in reads] + [general.feed(b"", True)]


@pytest.mark.parametrize("name", SSE_DIALECTS)
def test_an_answer_chunk_after_the_first_ones_is_read_by_the_template_alone(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Responses API numbers its events: its template learns the counter from the second chunk."""
    enc = dialect(name).encoder("m-1", "r-1")
    dec = dialect(name).decoder()
    dec.feed(enc.head())
    dec.feed(enc.content("first"))  # Gemini's first chunk names the model
    for text in ("second", "third"):
        assert dec.feed(enc.content(text)) == Decoded(content=(Content(text),))

    def general(*_: Any) -> Decoded:
        raise AssertionError("the general path read an answer chunk the template holds")

    monkeypatch.setattr(dec, "_feed", general)
    for text in ("hello", 'a "quoted" \\ piece', "\u00e9\u2028", "m-1"):
        assert dec.feed(enc.content(text)) == Decoded(content=(Content(text),))


def test_a_read_that_is_the_template_around_more_than_one_string_takes_the_general_path() -> None:
    enc = dialect("openai").encoder("m-1", "r-1")
    dec = dialect("openai").decoder()
    for chunk in (enc.head(), enc.content("one"), enc.content("two")):
        dec.feed(chunk)
    head, _, tail = enc.content("\x01").partition(b'"\\u0001"')
    # the same head and tail around two strings and a key: another object, read whole
    other = head + b'"x","refusal":"y"' + tail
    assert dec.feed(other) == _general("openai").feed(other)._replace(model=None)


def test_chunks_that_differ_in_more_than_their_text_stop_the_template_after_its_tries() -> None:
    """A server that pads each chunk with a random string (OpenAI's ``obfuscation``): each learned
    template misses the next chunk; after LEARN_TRIES the stream stops trying, and every chunk is
    still read right."""
    dec = dialect("openai").decoder()
    dec.feed(b'data: {"model":"m","choices":[{"delta":{"role":"assistant"}}]}\n\n')
    for n in range(LEARN_TRIES + 3):
        pad = "xyzw"[n % 4] * (n + 1)
        chunk = b'data: {"choices":[{"index":0,"delta":{"content":"t%d"}}],"obfuscation":"%s"}\n\n' % (
            n, pad.encode())
        assert dec.feed(chunk) == Decoded(content=(Content(f"t{n}"),))
    assert not dec._template.active  # type: ignore[attr-defined]


def test_a_text_the_server_escapes_otherwise_or_that_appears_twice_teaches_no_template() -> None:
    template = ChunkTemplate()
    never: list[bytes] = []

    def reads_as(chunk: bytes) -> str | None:
        never.append(chunk)
        return None

    template.after(b'data: {"choices":[{"delta":{"content":"\\u0061"}}]}\n\n', Decoded(content=(Content("a"),)),
                   reads_as)
    template.after(b'data: {"id":"a","choices":[{"delta":{"content":"a"}}]}\n\n', Decoded(content=(Content("a"),)),
                   reads_as)
    assert never == [] and template.text(b'data: {"id":"a","choices":[{"delta":{"content":"b"}}]}\n\n') is None


def test_a_head_apart_in_one_number_is_a_counter() -> None:
    assert _number_apart(b'{"seq":9,"x":1,"d":', b'{"seq":10,"x":1,"d":') == (b'{"seq":', 10, b',"x":1,"d":')
    assert _number_apart(b'{"seq":19,"d":', b'{"seq":20,"d":') == (b'{"seq":', 20, b',"d":')
    assert _number_apart(b'{"a":1,"b":2,"d":', b'{"a":2,"b":3,"d":') is None  # two numbers apart
    assert _number_apart(b'{"id":"x1","d":', b'{"id":"y1","d":') is None  # not a number that changed
    assert _number_apart(b'{"n":7,"d":', b'{"n":07,"d":') is None  # not a number JSON writes


def test_a_counter_that_skips_is_learned_again() -> None:
    """A numbered stream whose answer chunks skip a number (another event took it) still reads right."""
    dec = dialect("openai-responses").decoder()
    enc = dialect("openai-responses").encoder("m-1", "r-1")
    dec.feed(enc.head())
    chunks = [b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":%d,'
              b'"item_id":"msg_0","output_index":0,"content_index":0,"delta":"t%d","logprobs":[]}\n\n' % (n, n)
              for n in (3, 4, 5, 7, 8, 9, 10)]
    assert [dec.feed(c) for c in chunks] == [Decoded(content=(Content(f"t{n}"),)) for n in (3, 4, 5, 7, 8, 9, 10)]
    assert dec._template.active  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(common=st.binary(max_size=40), a=st.binary(max_size=12), b=st.binary(max_size=12))
def test_alike_counts_the_bytes_shared_at_either_end(common: bytes, a: bytes, b: bytes) -> None:
    def shared(x: bytes, y: bytes) -> int:
        n = 0
        while n < min(len(x), len(y)) and x[n] == y[n]:
            n += 1
        return n

    assert _alike(common + a, common + b) == shared(common + a, common + b)
    assert _alike_end(a + common, b + common) == shared((a + common)[::-1], (b + common)[::-1])


@pytest.mark.parametrize("name", ("anthropic", "openai-responses"))
def test_a_first_answer_read_with_other_events_teaches_the_answer_event_alone(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first answer chunk comes in one read with the events opening its item: the template is cut
    at the last event before the answer's, so the next chunks (one event each) are read by it; the
    Responses counter is learned from the second chunk, and the third is the template's."""
    enc = dialect(name).encoder("m-1", "r-1")
    dec = dialect(name).decoder()
    dec.feed(enc.head())
    first = enc.content("first")
    assert first.count(b"\n\n") > 1  # the opening events and the answer's, in one read
    assert dec.feed(first) == Decoded(content=(Content("first"),))
    assert dec._template._head is not None and b"\n\n" not in dec._template._head  # type: ignore[attr-defined]
    dec.feed(enc.content("second"))

    def general(*_: Any) -> Decoded:
        raise AssertionError("the general path read an answer chunk the template holds")

    monkeypatch.setattr(dec, "_feed", general)
    assert dec.feed(enc.content("third")) == Decoded(content=(Content("third"),))
