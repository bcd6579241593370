"""Incremental Server-Sent Events decoder.

Feed it bytes exactly as they come off the socket, in any split; it yields the ``data`` payload of
each complete event, in order. Line endings may be LF, CRLF or CR (per the SSE spec), including a
CRLF split across two reads. Comments (``:``) and fields other than ``data`` are ignored: OpenAI
streams carry everything in ``data``.
"""

from __future__ import annotations

_LF, _SPACE = 10, 32  # b"\n", b" "


class SSEDecoder:
    __slots__ = ("_buf", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []

    @property
    def idle(self) -> bool:
        """No event is under way: the next byte starts a new one."""
        return not self._buf and not self._data

    def feed(self, chunk: bytes) -> list[bytes]:
        """Return the data payloads of every event completed by ``chunk``."""
        if not self._buf and not self._data:
            # the common read: whole events, each ``data: X`` alone or after ``event: NAME``, their lines
            # ended by LF or CRLF (what the general path gives for them, without its line loop; ``_feed``
            # for anything else: a lone CR, more lines in an event, a part of one)
            text = chunk
            if b"\r" in text:
                text = text.replace(b"\r\n", b"\n")
                if b"\r" in text:  # a lone CR ends a line too
                    return self._feed(chunk)
            if text[-2:] == b"\n\n":
                # one find per event over the read, no copies but the payloads: a Responses lifecycle
                # event repeats the whole answer, and splitting, then slicing each event, went over it
                # several times (the loop ends: every event moves ``start`` on, or the read goes general)
                out = []
                start, end = 0, len(text)
                find, startswith = text.find, text.startswith
                while start < end:
                    if startswith(b"event:", start):
                        start = find(b"\n", start) + 1  # found: the read ends with a line end
                    if not startswith(b"data:", start):
                        return self._feed(chunk)
                    stop = find(b"\n", start)
                    if text[stop + 1] != _LF:  # more lines in the event (the last line end is at end - 1)
                        return self._feed(chunk)
                    out.append(text[start + 6 if text[start + 5] == _SPACE else start + 5:stop])
                    start = stop + 2
                return out
        return self._feed(chunk)

    def _feed(self, chunk: bytes) -> list[bytes]:
        """``feed`` for any bytes, in any split (the general path)."""
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # A trailing CR may be the first half of CRLF: keep it until the next read decides.
            held = buf.endswith(b"\r")
            if held:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if held:
                buf += b"\r"
        events: list[bytes] = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            self._line(buf[start:end], events)
            start = end + 1
        self._buf = buf[start:]
        return events

    def close(self) -> list[bytes]:
        """End of stream: a final event without its blank line is still dispatched."""
        events: list[bytes] = []
        rest = self._buf
        self._buf = b""
        if rest:
            self._line(rest.rstrip(b"\r"), events)
        if self._data:
            self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[bytes]) -> None:
        if not line:
            if self._data:
                events.append(b"\n".join(self._data))
                self._data = []
            return
        if line.startswith(b"data:"):
            value = line[5:]
            if value.startswith(b" "):
                value = value[1:]
            self._data.append(value)
        elif line == b"data":
            self._data.append(b"")
        # other fields (event, id, retry) and comments carry nothing we use


def complete_end(buf: bytes) -> int:
    """Index just past the last complete SSE event in ``buf`` (0 if none is complete)."""
    i = buf.rfind(b"\n\n")
    j = buf.rfind(b"\r\n\r\n")
    if j >= 0 and j + 4 > i + 2:
        return j + 4
    return i + 2 if i >= 0 else 0
