"""``DialectRelay``'s fast path (a committed stream's read that holds answer pieces and nothing else)
writes what its general path writes and keeps the same books, read by read, for a target of every
protocol that is translated and any split of its stream (several events per read included)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from loadbench.gateway.translate import DialectRelay
from loadbench.protocol.dialect import STOP, ToolCall
from loadbench.protocol.openai import OpenAIStreamEncoder
from loadbench.protocol.registry import dialect
from loadbench.protocol.usage import Usage

_PIECE = st.tuples(st.sampled_from(["answer", "answer", "answer", "reasoning"]), st.text(min_size=1, max_size=5))


def _relay(name: str) -> DialectRelay:
    return DialectRelay(dialect(name).decoder(), lambda model: OpenAIStreamEncoder(model, "chatcmpl-1", created=7),
                        "m", "its end", 1 << 20, capture=[])


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(["anthropic", "bedrock", "gemini", "openai-responses"]),
       pieces=st.lists(_PIECE, min_size=1, max_size=10), call=st.booleans(), data=st.data())
def test_the_answer_only_path_writes_and_counts_what_the_general_path_does(
        name: str, pieces: list[tuple[str, str]], call: bool, data: st.DataObject) -> None:
    enc = dialect(name).encoder("m-1", "r-1")
    events = [enc.head()] + [enc.content(text, channel) for channel, text in pieces]  # type: ignore[arg-type]
    if call:
        events.insert(data.draw(st.integers(1, len(events))), enc.tool_call(ToolCall("c1", "f", "{}")))
    events.append(enc.tail(STOP, Usage(3, len(pieces))))
    raw = b"".join(events)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=8))))
    split = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    for chunks in (events, split):
        fast, general = _relay(name), _relay(name)
        for i, chunk in enumerate(chunks):
            now_ns = 1000 + 10 * i  # never 0: a first_ns of 0 means "no content yet"
            assert fast.feed(chunk, now_ns) == general._general(general.decoder.feed(chunk), chunk, now_ns)
        assert fast.end(1000 + 10 * len(chunks)) == general.end(1000 + 10 * len(chunks))
        assert (fast.tokens, fast.gaps_ns, fast.first_ns, fast.capture, fast.usage, fast.error) == \
            (general.tokens, general.gaps_ns, general.first_ns, general.capture, general.usage, general.error)
