"""Every dialect with a server half: whatever pieces its encoder writes, its decoder reads back exactly
the non-empty pieces, in order and on their channels, however the bytes are split; a whole answer
decodes back to itself."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.protocol.dialect import STOP, TOOL_CALLS, Answer, Content, Dialect, ToolCall, WireError
from loadbench.protocol.registry import dialect
from loadbench.protocol.usage import Usage
from tests.protocol.dialect_checks import decode_split

NAMES = ("anthropic", "openai-responses", "azure", "bedrock", "gemini")
_PIECES = st.lists(st.tuples(st.text(max_size=5), st.sampled_from(["answer", "reasoning"])), max_size=8)
_CALLS = st.lists(st.builds(lambda i, a: ToolCall(f"call_{i}", f"fn{i}", a), st.integers(0, 9),
                            st.sampled_from(['{}', '{"a":1}', '{"q":"x y"}'])), max_size=2)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None)
@given(pieces=_PIECES, calls=_CALLS, split=st.integers(1, 50))
def test_the_decoder_reads_back_what_the_encoder_wrote(name: str, pieces: list[tuple[str, str]],
                                                       calls: list[ToolCall], split: int) -> None:
    d: Dialect = dialect(name)
    enc = d.encoder("m", "r1")
    raw = enc.head() + enc.keepalive() + b"".join(enc.content(t, c) for t, c in pieces)  # type: ignore[arg-type]
    if name != "azure":  # OpenAI's encoder and decoder of tool calls are the openai dialect's own tests
        raw += b"".join(enc.tool_call(c) for c in calls)
    usage = Usage(prompt_tokens=11, completion_tokens=7)
    raw += enc.tail(TOOL_CALLS if calls and name != "azure" else STOP, usage)
    got = decode_split(d, raw, split)
    expected = [Content(t, c) for t, c in pieces if t]  # type: ignore[arg-type]
    if name != "azure":
        expected += [Content(c.arguments, "tool") for c in calls]
        assert got.tool_calls == tuple(calls)
    assert list(got.content) == expected
    assert (got.usage, got.done, got.error) == (usage, True, None)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=30, deadline=None)
@given(text=st.text(max_size=20), reasoning=st.text(max_size=10), calls=_CALLS)
def test_a_whole_answer_decodes_back(name: str, text: str, reasoning: str, calls: list[ToolCall]) -> None:
    d = dialect(name)
    tool_calls = () if name == "azure" else tuple(calls)
    answer = Answer(text=text, finish_reason=TOOL_CALLS if tool_calls else STOP, usage=Usage(5, 3),
                    model=None if name == "bedrock" else "m", choices=1, tool_call=bool(tool_calls),
                    tool_calls=tool_calls, reasoning="" if name == "azure" else reasoning)
    back = d.decode(d.answer_body(answer, "r1"))
    assert (back.text, back.finish_reason, back.usage, back.tool_calls) == (
        answer.text, answer.finish_reason, answer.usage, answer.tool_calls)
    if name != "azure":
        assert back.reasoning == answer.reasoning


# (kind, status) of an error as another protocol reported it -> the status every dialect's own words keep
_FOREIGN = [(WireError("Overloaded", "overloaded_error", 529), (503, 529)),
            (WireError("Too many requests", "throttlingException", 429), (429,)),
            (WireError("quota", "RESOURCE_EXHAUSTED", 429), (429,)),
            (WireError("bad", "invalid_request_error", 400), (400,))]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("error", "statuses"), _FOREIGN)
def test_another_protocols_error_keeps_its_status_in_this_ones_words(name: str, error: WireError,
                                                                    statuses: tuple[int, ...]) -> None:
    """The gateway relays an upstream's error to a client in the client's protocol: the stream's error
    event and the error answer both carry a kind of this protocol that maps back to the status."""
    d = dialect(name)
    enc = d.encoder("m", "r1")
    got = decode_split(d, enc.head() + enc.content("a") + enc.error(error), 7).error
    assert got is not None and got.message == error.message
    if name != "azure":  # OpenAI's stream error event names no status of its own
        assert got.status in statuses, got
    answered = d.error(error.status or 500, d.error_body(error.message, error.status or 500, error.kind))
    assert answered.status == error.status and answered.message == error.message
