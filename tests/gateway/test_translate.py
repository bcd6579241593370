"""``DialectRelay``, pure: an Anthropic stream in any split re-written as OpenAI's, or passed through."""

from __future__ import annotations

from loadbench.gateway.translate import DialectRelay
from loadbench.protocol.anthropic import ANTHROPIC
from loadbench.protocol.dialect import STOP, ToolCall, WireError
from loadbench.protocol.openai import OPENAI
from loadbench.protocol.usage import Usage

USAGE = Usage(prompt_tokens=20, completion_tokens=4, cached_tokens=5, cache_write_tokens=3)


def anthropic_stream(error: WireError | None = None) -> bytes:
    enc = ANTHROPIC.encoder("claude-x", "msg_1")
    out = enc.head() + enc.keepalive() + enc.content("mull", "reasoning") + enc.content("Hel") + enc.content("lo")
    out += enc.tool_call(ToolCall("call_1", "lookup", '{"q": "x"}'))
    return out + (enc.error(error) if error else enc.tail(STOP, USAGE))


def relay(translate: bool = True, capture: list[bytes] | None = None) -> DialectRelay:
    return DialectRelay(ANTHROPIC.decoder(), (lambda model: OPENAI.encoder(model, "id-1")) if translate else None,
                        "fallback-model", ANTHROPIC.end_marker, 1 << 20, capture)


def feed_in(r: DialectRelay, raw: bytes, size: int) -> bytes:
    out = b""
    for i in range(0, len(raw), size):
        out += r.feed(raw[i:i + size], i)
    return out + r.end(len(raw))


def test_any_split_of_an_anthropic_stream_becomes_the_same_openai_stream() -> None:
    raw = anthropic_stream()
    outputs = set()
    for size in (1, 7, 64, len(raw)):
        capture: list[bytes] = []
        r = relay(capture=capture)
        out = feed_in(r, raw, size)
        assert not r.error and r.committed and b"".join(capture) == out
        decoded = OPENAI.decoder().feed(out, end_of_stream=True)
        # a tool call's arguments are content too, on their own channel, and the call arrives whole
        assert [(c.channel, c.text) for c in decoded.content] == [("reasoning", "mull"), ("answer", "Hel"),
                                                                  ("answer", "lo"), ("tool", '{"q": "x"}')]
        assert [(t.name, t.arguments) for t in decoded.tool_calls] == [("lookup", '{"q": "x"}')]
        assert decoded.done and decoded.usage == Usage(20, 4, 5, 0, 0)  # OpenAI's words have no cache writes
        assert decoded.model == "claude-x" and decoded.tool_call
        assert r.usage == USAGE  # the log and cost keep the cache writes
        outputs.add(out)
    assert len(outputs) == 1


def test_nothing_goes_out_before_the_first_content_and_an_error_then_fails_with_its_status() -> None:
    enc = ANTHROPIC.encoder("claude-x", "msg_1")
    r = relay()
    assert r.feed(enc.head() + enc.keepalive(), 1) == b"" and not r.committed
    assert r.feed(enc.error(WireError("Overloaded", "overloaded_error", 529)), 2) == b""
    assert r.error and r.error_status == 529 and not r.committed
    assert r.end(3) == b""


def test_an_error_after_the_first_content_is_reported_and_a_stream_without_its_end_is_cut() -> None:
    r = relay()
    out = feed_in(r, anthropic_stream(WireError("Overloaded", "overloaded_error", 529)), 50)
    assert r.committed and r.error_status == 529 and "overloaded_error" in r.error
    assert b"Hel" in out and b"[DONE]" not in out  # the exchange appends the client's error event
    enc = ANTHROPIC.encoder("claude-x", "msg_1")
    cut = relay()
    cut.feed(enc.head() + enc.content("Hel"), 1)
    assert cut.end(2) == b"" and "before" in cut.error and ANTHROPIC.end_marker in cut.error


def test_pass_through_relays_the_bytes_unchanged_and_holds_an_incomplete_event() -> None:
    raw = anthropic_stream()
    for size in (1, 13, len(raw)):
        r = relay(translate=False)
        assert feed_in(r, raw, size) == raw
        assert r.usage == USAGE and r.tokens == 4  # reasoning, two answer pieces, the tool's arguments
    r = relay(translate=False)
    first = ANTHROPIC.encoder("claude-x", "m").head() + ANTHROPIC.encoder("claude-x", "m").content("Hi")
    half = len(first) - 5
    assert r.feed(first[:half], 1) == b""  # no content yet
    assert r.feed(first[half:], 2) == first
