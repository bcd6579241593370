"""Chat turns as lists of typed blocks, the shape Anthropic, Bedrock and Gemini share (each with its own
block names): ``block_turns`` writes loadbench's messages as such turns, ``turn_messages`` reads one back.

The rules they share: system text travels apart from the turns; a tool's result is a block of a user
turn, and consecutive results share one turn (these APIs want roles to alternate); an assistant's
calls are blocks after its text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loadbench.protocol.dialect import Message, ToolCall

Block = dict[str, Any]


def block_turns(messages: tuple[Message, ...], *, text: Callable[[str], Block], call: Callable[[ToolCall], Block],
                result: Callable[[Message], Block]) -> tuple[str, list[tuple[str, list[Block]]]]:
    """(the system text joined, the other messages as (role, blocks) turns)."""
    system = "\n".join(m.content for m in messages if m.role == "system")
    turns: list[tuple[str, list[Block]]] = []
    results: tuple[str, list[Block]] | None = None  # the open user turn of tool results
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            if results is not None and turns and turns[-1] is results:
                results[1].append(result(m))
            else:
                results = ("user", [result(m)])
                turns.append(results)
            continue
        blocks = [text(m.content)] if m.content or not m.tool_calls else []
        turns.append((m.role, blocks + [call(c) for c in m.tool_calls]))
    return system, turns


def turn_messages(role: str, blocks: list[Any], *, text: Callable[[Block], str | None],
                  call: Callable[[Block], ToolCall | None], result: Callable[[Block], Message | None]) -> list[Message]:
    """One turn's blocks as messages: each tool result its own ``tool`` message, then the turn's text
    and calls as one message (left out when a turn holds only results)."""
    out: list[Message] = []
    texts: list[str] = []
    calls: list[ToolCall] = []
    for b in blocks:
        if not isinstance(b, dict):
            continue
        answered = result(b)
        if answered is not None:
            out.append(answered)
            continue
        made = call(b)
        if made is not None:
            calls.append(made)
            continue
        piece = text(b)
        if piece is not None:
            texts.append(piece)
    if texts or calls or not out:
        out.append(Message(role, "".join(texts), tuple(calls)))
    return out


def last_user_text(turns: object, text: Callable[[object], str], content_key: str = "content") -> str:
    """The text of the last user turn that has any, from a parsed body's turns ("" if none)."""
    if not isinstance(turns, list):
        return ""
    users = [text(t.get(content_key)) for t in turns if isinstance(t, dict) and t.get("role") == "user"]
    users = [u for u in users if u]
    return users[-1] if users else ""
