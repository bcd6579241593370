"""The decoders' answer-chunk template (``protocol.chunktemplate``): a read is taken by the template only
when the decoder's general path would read it as the same one answer piece, for every SSE dialect, in
any split, with any text; a stream whose chunks differ in more than the text stops trying."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.protocol.chunktemplate import (
    LEARN_TRIES,
    ChunkTemplate,
    _alike,
    _alike_end,
    _number_apart,
    _number_at,
)
from loadbench.protocol.dialect import INVALID, STOP, Content, Decoded, StreamDecoder, ToolCall, WireError
from loadbench.protocol.registry import dialect
from loadbench.protocol.usage import Usage
from tests.protocol.dialect_checks import kept, same_for_any_split

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
    """The Responses API numbers its events: its template counts them from the first answer chunk."""
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


def test_a_named_counter_is_found_once_as_json_writes_a_number() -> None:
    assert _number_at(b'{"seq":9,"d":', b'"seq":') == (b'{"seq":', 9, b',"d":')
    assert _number_at(b'{"seq":120,"d":', b'"seq":') == (b'{"seq":', 120, b',"d":')
    assert _number_at(b'{"n":9,"d":', b'"seq":') is None  # not there
    assert _number_at(b'{"seq":1,"x":{"seq":2},"d":', b'"seq":') is None  # there twice: which one counts?
    assert _number_at(b'{"seq":"9","d":', b'"seq":') is None  # not a number
    assert _number_at(b'{"seq":09,"d":', b'"seq":') is None  # not a number JSON writes


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
    at the last event before the answer's, so the next chunks (one event each) are read by it (the
    Responses counter with it: the decoder names its key)."""
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


def _numbered_delta(n: int, text: bytes, rest: bytes = b',"logprobs":[]') -> bytes:
    """A Responses answer event as OpenAI writes it, numbered ``n``."""
    return (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":%d,'
            b'"item_id":"msg_0","output_index":0,"content_index":0,"delta":%s%s}\n\n' % (n, text, rest))


def _templated(dec: StreamDecoder, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The reads the decoder's general path takes from now on (the template takes the others)."""
    general: list[bytes] = []
    feed = dec._feed  # type: ignore[attr-defined]

    def counted(chunk: bytes, *rest: Any) -> Decoded:
        general.append(chunk)
        return feed(chunk, *rest)  # type: ignore[no-any-return]

    monkeypatch.setattr(dec, "_feed", counted)
    return general


def test_the_responses_counter_is_learned_from_the_first_answer_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decoder names the Responses API's event number (``sequence_number``): the template learned
    from the first answer chunk counts it, so the second chunk is already the template's."""
    enc = dialect("openai-responses").encoder("m-1", "r-1")
    dec = dialect("openai-responses").decoder()
    dec.feed(enc.head())
    assert dec.feed(enc.content("first")) == Decoded(content=(Content("first"),))
    general = _templated(dec, monkeypatch)
    texts = [f"t{n}" for n in range(120)]  # the count grows a digit on the way, twice
    assert [dec.feed(enc.content(t)) for t in texts] == [Decoded(content=(Content(t),)) for t in texts]
    assert general == []


def test_a_server_that_repeats_its_event_number_is_read_by_a_template_without_a_counter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server whose events all carry one number: the counter the first chunk taught misses once, and
    the template learned again holds the number as it is; every chunk reads right."""
    dec = dialect("openai-responses").decoder()
    assert dec.feed(_numbered_delta(5, b'"t0"')) == Decoded(content=(Content("t0"),))
    assert dec.feed(_numbered_delta(5, b'"t1"')) == Decoded(content=(Content("t1"),))  # the counter's miss
    general = _templated(dec, monkeypatch)
    assert [dec.feed(_numbered_delta(5, b'"t%d"' % n)) for n in range(2, 8)] == \
        [Decoded(content=(Content(f"t{n}"),)) for n in range(2, 8)]
    assert general == [] and dec._template.active  # type: ignore[attr-defined]


@pytest.mark.parametrize("chunk", [
    _numbered_delta(9, b'"x"'),  # a number the counter did not expect
    _numbered_delta(3, b'"x","obfuscation":"pad"'),  # one more key between the text and the tail
    _numbered_delta(3, b'"x"', b',"logprobs":[{"token":"x"}]'),  # another tail
    _numbered_delta(3, b'"x"', b',"logprobs":[]').replace(b"msg_0", b"msg_1"),  # another item
    _numbered_delta(3, b'"x\x01"'),  # a raw control character: not JSON
    _numbered_delta(3, b'"x"', b',"logprobs":[]').replace(b"}\n\n", b"\n\n"),  # the object unclosed
    _numbered_delta(3, b'""'),  # an empty delta is no token
    _numbered_delta(3, b'"x"') + _numbered_delta(4, b'"y"'),  # two events in one read
    _numbered_delta(3, b'"x"')[:-1],  # a part of the event
])
def test_a_read_off_the_responses_template_takes_the_general_path(
        chunk: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that is not the learned template around one JSON string is read whole, as a decoder
    without a template reads it (INVALID for one that is not JSON)."""
    dec, general = dialect("openai-responses").decoder(), _general("openai-responses")
    for n in (1, 2):
        assert dec.feed(_numbered_delta(n, b'"t%d"' % n)) == general.feed(_numbered_delta(n, b'"t%d"' % n))
    taken = _templated(dec, monkeypatch)
    assert dec.feed(chunk) == general.feed(chunk)
    assert taken == [chunk]
    assert dec.feed(b"", True) == general.feed(b"", True)


def test_a_malformed_event_on_the_template_is_invalid() -> None:
    dec = dialect("openai-responses").decoder()
    for n in (1, 2):
        dec.feed(_numbered_delta(n, b'"t%d"' % n))
    bad = dec.feed(_numbered_delta(3, b'"x\x01"'))
    assert bad.content == () and bad.error is not None and bad.error.kind == INVALID


def _responses_stream() -> list[bytes]:
    """A Responses stream, one event group per read: reasoning, answer chunks, a tool call, more answer,
    usage with cached and reasoning tokens."""
    enc = dialect("openai-responses").encoder("m-1", "r-1")
    return [enc.head(), *(enc.content(f"think{n} ", "reasoning") for n in range(3)),
            *(enc.content(t) for t in ("Hel", "lo", ' "wor', "ld\"", "\u00e9\u2028", "!")),
            enc.tool_call(ToolCall("call_1", "lookup", '{"q":"x"}')),
            *(enc.content(f"more{n}") for n in range(4)),
            enc.tail(STOP, Usage(prompt_tokens=40, completion_tokens=20, cached_tokens=16, reasoning_tokens=6))]


def test_a_responses_stream_read_an_event_at_a_time_is_the_stream_read_in_any_split(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One read per event (the template's reads) decodes to what the same bytes decode to in one read,
    in pieces of any size, and cut at every byte offset; the template took most answer chunks."""
    events = _responses_stream()
    dec = dialect("openai-responses").decoder()
    general = _templated(dec, monkeypatch)
    per_event = kept([dec.feed(e) for e in events] + [dec.feed(b"", True)])
    assert per_event == same_for_any_split(dialect("openai-responses"), b"".join(events))
    assert per_event.usage == Usage(40, 20, 16, 0, 6) and per_event.tool_calls == (
        ToolCall("call_1", "lookup", '{"q":"x"}'),)
    assert "".join(c.text for c in per_event.content if c.channel == "answer") == \
        'Hello "world"\u00e9\u2028!more0more1more2more3'
    assert len(general) < len(events) - 6  # the answer chunks after each item's first were the template's


def test_a_responses_error_event_after_templated_chunks_is_the_error_with_its_status() -> None:
    enc = dialect("openai-responses").encoder("m-1", "r-1")
    events = [enc.head(), *(enc.content(f"t{n}") for n in range(5)), enc.error(WireError("slow", "", 429))]
    dec = dialect("openai-responses").decoder()
    per_event = kept([dec.feed(e) for e in events] + [dec.feed(b"", True)])
    assert per_event == same_for_any_split(dialect("openai-responses"), b"".join(events))
    assert per_event.error == WireError("slow", "rate_limit_exceeded", 429)


def test_a_counted_stream_whose_item_changes_is_read_right(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answer chunks of a second item (another output index, the count gone on): the template misses
    once, learns the new head, and counts on."""
    dec = dialect("openai-responses").decoder()
    first = [_numbered_delta(n, b'"a%d"' % n) for n in range(1, 4)]
    second = [_numbered_delta(n, b'"b%d"' % n).replace(b'"output_index":0', b'"output_index":1')
              for n in range(9, 14)]
    assert [dec.feed(c) for c in first + second[:2]] == \
        [Decoded(content=(Content(f"a{n}"),)) for n in range(1, 4)] + [Decoded(content=(Content(f"b{n}"),))
                                                                        for n in (9, 10)]
    general = _templated(dec, monkeypatch)
    assert [dec.feed(c) for c in second[2:]] == [Decoded(content=(Content(f"b{n}"),)) for n in (11, 12, 13)]
    assert general == []
