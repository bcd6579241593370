"""Each event-typed stream decoder's fast path (the common read: one whole event carrying one answer
piece, and nothing else) gives what its general path gives (every event read through ``event``), read
by read; the SSE decoder's own single-event path is tested in ``test_sse``. The OpenAI encoder's
content template writes what building each chunk writes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.protocol.aws import frame
from loadbench.protocol.bedrock import BedrockStreamDecoder
from loadbench.protocol.dialect import NOTHING, STOP, Content, Decoded, StreamDecoder, ToolCall, WireError
from loadbench.protocol.eventdecoder import JsonEventDecoder
from loadbench.protocol.openai import OPENAI, OpenAIStreamEncoder
from loadbench.protocol.registry import dialect
from loadbench.protocol.usage import Usage


def _general(dec: StreamDecoder, chunk: bytes, end: bool) -> Decoded:
    """The decoder's general path for one read (its fast path skipped)."""
    if isinstance(dec, JsonEventDecoder):
        payloads = dec._sse._feed(chunk) if chunk else []
        return dec._decode(payloads) if payloads else NOTHING
    assert isinstance(dec, BedrockStreamDecoder)
    if not chunk or dec._broken:
        return NOTHING
    return dec._decode(*dec._reader.feed(chunk))


# events each decoder must leave to its general path (an odd shape of an answer event, or more than one)
_ODD = {
    "anthropic": [b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                  b'"delta":{"type":"text_delta","text":""}}\n\n',
                  b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":5}}\n\n',
                  b'data: {"type":"content_block_delta","delta":"x"}\n\n', b"data: [1]\n\n", b"data: {\n\n"],
    "openai-responses": [b'data: {"type":"response.output_text.delta","delta":""}\n\n',
                         b'data: {"type":"response.refusal.delta","delta":"no"}\n\n',
                         b'data: {"type":"response.output_text.delta","delta":null}\n\n'],
    "gemini": [b'data: {"candidates":[{"content":{"parts":[{"text":"a"},{"text":"b"}]}}]}\r\n\r\n',
               b'data: {"candidates":[{"content":{"parts":[{"text":"a","thought":true}]}}]}\r\n\r\n',
               b'data: {"candidates":[{"content":{"parts":[{"text":"a"}]}}],"usageMetadata":'
               b'{"candidatesTokenCount":3}}\r\n\r\n',
               b'data: {"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"STOP"}]}\r\n\r\n',
               b'data: {"candidates":[{"content":{"parts":[{"text":"a","functionCall":{"name":"f"}}]}}]}\n\n'],
    "bedrock": [frame({":event-type": "contentBlockDelta", ":message-type": "event"}, b'{"delta":{"text":""}}'),
                frame({":event-type": "contentBlockDelta", ":message-type": "exception",
                       ":exception-type": "throttlingException"}, b'{"delta":{"text":"a"}}'),
                frame({":event-type": "contentBlockDelta"}, b'{"delta":{"toolUse":{"input":"{}"}}}'),
                frame({":event-type": "messageStop"}, b'{"delta":{"text":"a"}}'),
                frame({":event-type": "contentBlockDelta"}, b"not json"),
                frame({":event-type": "contentBlockDelta"}, b'[{"delta":{"text":"a"}}]'),
                frame({":event-type": "contentBlockDelta"}, b'{"delta":{"text":5},"p":"ab"}'),
                frame({":event-type": "contentBlockDelta"}, b'{"delta":"text","p":"ab"}')],
}
_PIECE = st.tuples(st.sampled_from(["answer", "answer", "reasoning"]), st.text(max_size=6))


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(_ODD)), pieces=st.lists(_PIECE, max_size=8),
       odd=st.lists(st.integers(0, 7), max_size=3), call=st.booleans(), error=st.booleans(), data=st.data())
def test_each_decoders_single_answer_path_gives_what_its_general_path_gives(
        name: str, pieces: list[tuple[str, str]], odd: list[int], call: bool, error: bool,
        data: st.DataObject) -> None:
    d = dialect(name)
    enc = d.encoder("m-1", "r-1")
    events = [enc.head()] + [enc.content(text, channel) for channel, text in pieces]  # type: ignore[arg-type]
    for i in odd:
        events.insert(data.draw(st.integers(1, len(events))), _ODD[name][i % len(_ODD[name])])
    if call:
        events.append(enc.tool_call(ToolCall("c1", "f", '{"a":1}')))
    events.append(enc.error(WireError("slow down", "", 429)) if error else enc.tail(STOP, Usage(3, 4)))
    raw = b"".join(events)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=4))))
    split = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    for chunks in (events, split):  # one event per read (the fast path's case), and any split
        fast, general = d.decoder(), d.decoder()
        assert [fast.feed(c) for c in chunks] + [fast.feed(b"", True)] == \
            [_general(general, c, False) for c in chunks] + [_general(general, b"", True)]


def test_the_single_answer_path_is_taken_for_each_protocols_answer_event(monkeypatch: pytest.MonkeyPatch) -> None:
    def general(*_: object) -> Decoded:
        raise AssertionError("the general path read an answer event")

    for name in _ODD:
        enc = dialect(name).encoder("m-1", "r-1")
        dec = dialect(name).decoder()
        dec.feed(enc.head() + enc.content("first"))
        monkeypatch.setattr(dec, "_decode", general)
        assert dec.feed(enc.content("hello")) == Decoded(content=(Content("hello"),))


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.tuples(st.sampled_from(["answer", "reasoning", "tool"]), st.text(max_size=8)), max_size=6),
       chat=st.booleans(), model=st.sampled_from(["m-1", 'a "quoted" model', "\x00loadbench-splice\x00", "é"]))
def test_the_openai_encoders_template_writes_what_building_each_chunk_writes(
        texts: list[tuple[str, str]], chat: bool, model: str) -> None:
    enc = OPENAI.encoder(model, "chatcmpl-1", "chat" if chat else "completions")
    general = OPENAI.encoder(model, "chatcmpl-1", "chat" if chat else "completions")
    assert isinstance(enc, OpenAIStreamEncoder) and isinstance(general, OpenAIStreamEncoder)
    general._head = enc._head  # the same "created" second
    for channel, text in texts:
        assert enc.content(text, channel) == general._content(text, channel)  # type: ignore[arg-type]
