"""A stream's answer chunks as one template around their text: the decoders' per-chunk fast path.

Why: a stream's answer chunks are the same bytes but for their text (the id, the model, the creation
time, Azure's content-filter results: all repeated in every chunk), and a worker decodes thousands of
them a second. Parsing each chunk whole (SSE lines, then a JSON object of 150-400 bytes) cost most
of the decode; a chunk that is the template's head, one JSON string, and its tail needs only that
string parsed.

Exact, not a guess: the template is cut from a read the decoder's general path read as exactly one
answer piece and nothing else (one whole event, no partial event before or after), at the one place
the piece's JSON text appears, and is kept only if the general path reads the template filled with
two probe strings as exactly those pieces. A JSON string holds no raw line break, so any read that is
the head, one JSON string and the tail is the same single event with another string in the same
place: the same answer piece and nothing else, with that string as its text. Anything else (another
kind of event, several events in a read, a part of one, a server whose chunks differ in more than the
text) takes the general path.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from loadbench.protocol.dialect import Decoded

# the fill-ins the template is checked with: one ASCII, one that JSON may escape or write raw
PROBES = ("loadbench probe", "\u00e9 \\ \"q\" \u2028")
LEARN_TRIES = 3  # reads a stream may spend learning its template (a failed try costs a few microseconds)
_QUOTE = 34  # b'"'
_DIGITS = b"0123456789"
_NINE = 57  # b"9"


def sole_answer(decoded: Decoded) -> str | None:
    """The text of a read that decoded to one answer piece and nothing else, else None."""
    content = decoded.content
    if len(content) != 1 or content[0][1] != "answer" or decoded.usage is not None or decoded.model is not None \
            or decoded.finish_reason or decoded.error is not None or decoded.tool_call or decoded.done \
            or decoded.tool_calls:
        return None
    return content[0][0]


def _alike(a: bytes, b: bytes) -> int:
    """How many bytes ``a`` and ``b`` share from their start (run only when a template is learned again):
    a bisection over slices, each compared in C, rather than a Python loop over every byte."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:  # the first lo bytes are already known alike
            lo = mid
        else:
            hi = mid - 1
    return lo


def _alike_end(a: bytes, b: bytes) -> int:
    """How many bytes ``a`` and ``b`` share at their end (``_alike`` from the other side, no reversed copies)."""
    la, lb = len(a), len(b)
    lo, hi = 0, min(la, lb)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[la - mid:la - lo] == b[lb - mid:lb - lo]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _number_apart(old: bytes, new: bytes) -> tuple[bytes, int, bytes] | None:
    """(what comes before, the number, what comes after) when ``new`` is ``old`` with one decimal number
    changed (a server's event counter), else None."""
    i = _alike(old, new)
    j = min(_alike_end(old, new), len(old) - i, len(new) - i)
    while i > 0 and old[i - 1] in _DIGITS:
        i -= 1
    while j > 0 and old[len(old) - j] in _DIGITS:
        j -= 1
    was, now = old[i:len(old) - j], new[i:len(new) - j]
    if not (was.isdigit() and now.isdigit()) or now != b"%d" % int(now):
        return None
    return new[:i], int(now), new[len(new) - j:]


def _number_at(head: bytes, key: bytes) -> tuple[bytes, int, bytes] | None:
    """(what comes before, the number, what comes after) when ``key`` appears once in ``head``, followed
    by a decimal number as JSON writes it, else None."""
    at = head.find(key)
    if at < 0 or head.find(key, at + 1) >= 0:
        return None
    start = end = at + len(key)
    while end < len(head) and head[end] in _DIGITS:
        end += 1
    digits = head[start:end]
    if not digits or digits != b"%d" % int(digits):
        return None
    return head[:start], int(digits), head[end:]


class ChunkTemplate:
    """One stream's answer-chunk template (per decoder: ids differ from stream to stream).

    A decoder asks ``text`` first while ``active``; on None it decodes the read its general way and
    tells ``after`` what that read was. An answer piece the template missed makes it learn again from
    that read, at most ``LEARN_TRIES`` times a stream; then the stream stops trying and pays for no
    template at all. A head that differs from the last only in one number (the Responses API numbers
    its events) is learned as a counter that goes up by one with each answer chunk; a decoder whose
    protocol numbers its events names the number's key (``counter``), and the counter is then learned
    from the stream's first answer chunk rather than from the second (a second learning cost as much
    as a dozen answer chunks)."""

    __slots__ = ("_counter", "_head", "_last", "_min_bytes", "_post", "_pre", "_tail", "_tail_bytes", "_tries",
                 "active")

    def __init__(self, counter: bytes | None = None) -> None:
        self._counter = counter  # the key of a number that goes up by one with each event (``"seq":``)
        self._head: bytes | bytearray | None = None  # the next answer chunk's bytes before its text
        self._tail = b""
        self._tail_bytes = 0
        self._min_bytes = 0
        self._tries = LEARN_TRIES
        # a counted head is _pre, the number, _post, kept as one bytearray whose number goes up in place:
        # its last digit, at _last (0: no counter), once a chunk; building the head anew for every chunk
        # cost about a fifth of the chunk's decode
        self._pre = self._post = b""
        self._last = 0
        self.active = True  # learned, or still learning

    def text(self, chunk: bytes) -> str | None:
        """The answer text of ``chunk`` when it is the template around one non-empty JSON string, else None."""
        head = self._head
        if head is None or len(chunk) < self._min_bytes or not chunk.startswith(head) \
                or not chunk.endswith(self._tail):
            return None
        middle = chunk[len(head):len(chunk) - self._tail_bytes]
        if middle[0] != _QUOTE or middle[-1] != _QUOTE:
            return None
        try:
            text = orjson.loads(middle)  # one string token or an error: quotes at both ends, nothing around
        except orjson.JSONDecodeError:
            return None
        if type(text) is not str or not text:
            return None
        last = self._last
        if last:
            digit = head[last]
            if digit != _NINE:
                head[last] = digit + 1  # type: ignore[index]  # a counted head is a bytearray
            else:
                self._carry()
        return text

    def _carry(self) -> None:
        """The counted head's number up by one when its last digit is a 9 (one chunk in ten): the 9s
        become 0s and the digit before them goes up, in place; a number of 9s alone grows a digit."""
        head, last, start = self._head, self._last, len(self._pre)
        assert isinstance(head, bytearray)
        at = last
        while at >= start and head[at] == _NINE:  # bounded: the number's digits
            at -= 1
        if at < start:
            self._count_from(int(head[start:last + 1]) + 1)
            return
        head[at] += 1
        head[at + 1:last + 1] = b"0" * (last - at)

    def _number(self) -> int:
        """The number of a counted head."""
        assert self._head is not None
        return int(self._head[len(self._pre):self._last + 1])

    def _count_from(self, number: int) -> None:
        """Expect the counted head with ``number``."""
        digits = b"%d" % number
        self._head = bytearray(self._pre + digits + self._post)
        self._last = len(self._pre) + len(digits) - 1
        self._min_bytes = len(self._head) + self._tail_bytes + 2

    def after(self, chunk: bytes, decoded: Decoded, reads_as: Callable[[bytes], str | None]) -> None:
        """The general path read ``chunk`` (whole events, none left partial) as ``decoded``. When that is
        one answer piece, learn the template from it; ``reads_as`` gives the text of the one answer piece
        a read decodes to, the general path's way (None when it decodes to anything else)."""
        text = sole_answer(decoded)
        if text is None:
            return  # another kind of event: the template, if any, still holds
        expected = bytes(self._head) if self._head is not None else None
        predicted = self._number() if self._last else None  # the number the counter expected
        self._head, self._last = None, 0
        if self._tries <= 0:
            self.active = False
            return
        self._tries -= 1
        token = orjson.dumps(text)
        at = chunk.find(token)
        if at < 0 or chunk.find(token, at + 1) >= 0:
            return  # written another way (escaped differently) or found twice: not a place we can trust
        head, tail = chunk[:at], chunk[at + len(token):]
        # a read that brought other events before the answer's (a stream's first answer chunk comes with
        # the events opening its item) teaches the answer event alone: the template of the reads to come,
        # each one event; the probes below still decide whether it reads as the answer
        cut = head.rfind(b"\n\n")
        if cut >= 0:
            head = head[cut + 2:]
        counted = _number_apart(expected, head) if expected is not None and tail == self._tail else None
        if counted is not None:
            if predicted is not None and counted[0] == self._pre and counted[1] < predicted:
                counted = None  # the counter's number did not go up as it said: a server that repeats it
        elif self._counter is not None:
            counted = _number_at(head, self._counter)
        if counted is not None:
            pre, count, post = counted
            head = pre + b"%d" % (count + 1) + post  # the next chunk's, checked with the probes
        for probe in PROBES:
            if reads_as(head + orjson.dumps(probe) + tail) != probe:
                return
        self._head, self._tail, self._tail_bytes = head, tail, len(tail)
        self._min_bytes = len(head) + len(tail) + 2
        if counted is not None:
            self._pre, self._post = pre, post
            self._count_from(count + 1)
