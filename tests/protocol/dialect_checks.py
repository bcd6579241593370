"""What every dialect's tests check the same way: a stream decodes to the same events however its
bytes are split, and what a caller keeps of a whole stream."""

from __future__ import annotations

from dataclasses import dataclass

from loadbench.protocol.dialect import Content, Decoded, Dialect, ToolCall, WireError
from loadbench.protocol.usage import Usage


@dataclass(frozen=True)
class Kept:
    """What a caller keeps of a whole stream."""

    content: tuple[Content, ...]
    usage: Usage | None
    model: str | None
    finish: str | None
    error: WireError | None
    tool_call: bool
    done: bool
    tool_calls: tuple[ToolCall, ...]


def kept(fed: list[Decoded]) -> Kept:
    usage = [d.usage for d in fed if d.usage is not None]
    model = [d.model for d in fed if d.model is not None]
    finish = [d.finish_reason for d in fed if d.finish_reason is not None]
    error = [d.error for d in fed if d.error is not None]
    return Kept(tuple(c for d in fed for c in d.content), usage[-1] if usage else None, model[0] if model else None,
                finish[-1] if finish else None, error[0] if error else None, any(d.tool_call for d in fed),
                any(d.done for d in fed), tuple(c for d in fed for c in d.tool_calls))


def decode_split(d: Dialect, raw: bytes, size: int) -> Kept:
    """``raw`` fed to a fresh decoder in pieces of ``size`` bytes, then the end of the stream."""
    dec = d.decoder()
    fed = [dec.feed(raw[i:i + size]) for i in range(0, len(raw), size)]
    fed.append(dec.feed(b"", end_of_stream=True))
    return kept(fed)


def same_for_any_split(d: Dialect, raw: bytes) -> Kept:
    """The events of ``raw`` decoded whole, checked equal for splits of 1, 2, 3, 7 and 64 bytes and at
    every single cut point."""
    whole = decode_split(d, raw, len(raw) or 1)
    for size in (1, 2, 3, 7, 64):
        assert decode_split(d, raw, size) == whole, f"split every {size} bytes"
    for cut in range(1, len(raw)):
        dec = d.decoder()
        assert kept([dec.feed(raw[:cut]), dec.feed(raw[cut:]), dec.feed(b"", True)]) == whole, f"cut at {cut}"
    return whole
