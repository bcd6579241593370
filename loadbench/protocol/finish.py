"""``FinishWords``: a protocol's finish reasons and loadbench's (STOP, LENGTH, TOOL_CALLS, CONTENT_FILTER),
both ways. A reason with no equivalent passes through verbatim, as ``dialect`` says."""

from __future__ import annotations

from collections.abc import Mapping


class FinishWords:
    __slots__ = ("_ours", "_theirs")

    def __init__(self, ours: Mapping[str, str], theirs: Mapping[str, str]) -> None:
        self._ours, self._theirs = dict(ours), dict(theirs)  # their word -> ours; ours -> the one they write

    def ours(self, reason: object) -> str | None:
        """A reason the protocol wrote, in loadbench's words (None when it wrote none)."""
        return self._ours.get(reason, reason) if isinstance(reason, str) and reason else None

    def theirs(self, reason: str) -> str:
        """A reason in loadbench's words, as the protocol writes it."""
        return self._theirs.get(reason, reason)
