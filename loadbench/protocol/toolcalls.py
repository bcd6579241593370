"""``ToolCalls``: a streamed response's tool calls, assembled from the pieces the protocol sends.

Anthropic, Bedrock and the Responses API open a call (its id and name), stream its JSON arguments in
pieces and close it; a decoder reports each piece as content on the ``tool`` channel and hands the
whole ``ToolCall`` over once, when the call closes.
"""

from __future__ import annotations

from loadbench.protocol.dialect import ToolCall


class ToolCalls:
    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[object, tuple[str, str, list[str]]] = {}

    def start(self, key: object, call_id: str, name: str) -> None:
        self._open[key] = (call_id, name, [])

    def piece(self, key: object, text: str) -> bool:
        """Adds an argument piece to the open call ``key``; False when no such call is open."""
        call = self._open.get(key)
        if call is None:
            return False
        call[2].append(text)
        return True

    def is_open(self, key: object) -> bool:
        return key in self._open

    def finish(self, key: object, arguments: str | None = None) -> ToolCall | None:
        """The whole call ``key`` (``arguments``: the protocol's own final text, when it sends one)."""
        call = self._open.pop(key, None)
        if call is None:
            return None
        call_id, name, pieces = call
        text = arguments if arguments is not None else "".join(pieces)
        return ToolCall(call_id, name, text or "{}")
