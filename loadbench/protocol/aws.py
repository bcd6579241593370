"""AWS's pieces of a protocol: the ``application/vnd.amazon.eventstream`` framing and SigV4 signing.

- ``frame`` writes one event-stream message: ``[total u32][headers u32][prelude CRC32][headers]
  [payload][message CRC32]``, big-endian, headers as string values (type 7). ``FrameReader`` reads
  frames in any split, both CRCs checked. botocore's ``EventStreamBuffer`` is the reference codec (a
  well-kept one beats a hand-written one): the reader reads the common frame itself (both CRCs with
  ``zlib.crc32`` on the frame's bytes, lengths within botocore's limits, string headers), at a fifth
  of botocore's per-frame cost, and hands every other frame, and the rest of the stream, to botocore,
  so that whatever botocore refuses, raises or accepts stays exactly that. botocore has no writer;
  this one is tested against its reader and against boto3 itself.
- ``sign`` is SigV4 (botocore's ``SigV4Auth``) over a request ``Dialect.request`` built: a pure
  function of the request, the credentials, the region and the time the caller passes in.
  ``chain_credentials`` reads the standard AWS chain (environment, profile, container or instance role).
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loadbench.protocol.dialect import WireRequest

# botocore is imported where it is used: a process that speaks no AWS protocol never pays its import

_STRING = 7  # the event-stream header value type of a UTF-8 string


def frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message carrying ``headers`` (string values) and ``payload``."""
    head = b"".join(struct.pack(">B", len(k)) + k.encode() + struct.pack(">BH", _STRING, len(v.encode()))
                    + v.encode() for k, v in headers.items())
    prelude = struct.pack(">II", 16 + len(head) + len(payload), len(head))
    body = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return body + struct.pack(">I", zlib.crc32(body))


class FrameError(ValueError):
    """The bytes are not a well-formed event stream (a CRC does not match, a length is impossible)."""


# botocore's limits on one message (eventstream._MAX_HEADERS_LENGTH, _MAX_PAYLOAD_LENGTH)
_MAX_HEADERS_BYTES = 128 * 1024
_MAX_PAYLOAD_BYTES = 24 * 1024 * 1024
_PRELUDE = struct.Struct(">III")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")

_SEEN_HEADERS = 32  # distinct header sections kept per stream (Bedrock's streams have about six)
# one message as the reader hands it over: its headers and its payload
Frame = tuple[dict[str, Any], bytes]


def _string_headers(buf: bytes, at: int, end: int) -> dict[str, Any] | None:
    """The headers in ``buf[at:end]`` when every one is a well-formed string header (type 7) and no name
    repeats; None for anything else, which botocore's parser then reads (or refuses) itself."""
    headers: dict[str, Any] = {}
    while at < end:
        name_end = at + 1 + buf[at]
        if name_end + 3 > end or buf[name_end] != _STRING:
            return None
        value_at = name_end + 3
        value_end = value_at + _U16.unpack_from(buf, name_end + 1)[0]
        if value_end > end:
            return None
        try:
            name, value = buf[at + 1:name_end].decode(), buf[value_at:value_end].decode()
        except UnicodeDecodeError:
            return None
        if name in headers:
            return None
        headers[name] = value
        at = value_end
    return headers


class FrameReader:
    """Event-stream messages from bytes in any split. ``feed`` returns the messages a chunk completed and
    the ``FrameError`` of the first bad frame (None when there is none); nothing after a bad frame can be
    trusted, so the caller stops reading there. Frames with the same header section share one headers
    dict: callers read it, never change it."""

    __slots__ = ("_buf", "_seen", "_slow")

    def __init__(self) -> None:
        self._buf = b""
        self._seen: dict[bytes, dict[str, Any]] = {}  # header sections read so far, by their bytes
        self._slow: Any = None  # botocore's EventStreamBuffer, once a frame needed it

    def feed(self, chunk: bytes) -> tuple[list[Frame], FrameError | None]:
        if self._slow is not None:
            return self._botocore(chunk, [])
        buf = self._buf + chunk if self._buf else chunk
        frames: list[Frame] = []
        start, size = 0, len(buf)
        crc32, prelude, u32, seen = zlib.crc32, _PRELUDE.unpack_from, _U32.unpack_from, self._seen
        while size - start >= 12:
            total, headers_bytes, prelude_crc = prelude(buf, start)
            payload_bytes = total - headers_bytes - 16
            # botocore checks the prelude as soon as its 12 bytes are in: so does this, at the same read
            if crc32(buf[start:start + 8]) != prelude_crc or headers_bytes > _MAX_HEADERS_BYTES \
                    or not 0 <= payload_bytes <= _MAX_PAYLOAD_BYTES:
                return self._hand_over(buf[start:], frames)
            end = start + total
            if end > size:
                break
            if crc32(buf[start + 8:end - 4], prelude_crc) != u32(buf, end - 4)[0]:
                return self._hand_over(buf[start:], frames)
            headers_end = start + 12 + headers_bytes
            # a stream repeats a few header sections (one per event type): each is read once
            head = buf[start + 12:headers_end]
            headers = seen.get(head)
            if headers is None:
                headers = _string_headers(buf, start + 12, headers_end)
                if headers is None:
                    return self._hand_over(buf[start:], frames)
                if len(seen) < _SEEN_HEADERS:
                    seen[head] = headers
            frames.append((headers, buf[headers_end:end - 4]))
            start = end
        self._buf = buf[start:] if start else buf
        return frames, None

    def _hand_over(self, rest: bytes, frames: list[Frame]) -> tuple[list[Frame], FrameError | None]:
        """From this frame on, botocore reads the stream (what it makes of a frame this reader does not
        read itself is the answer)."""
        from botocore.eventstream import EventStreamBuffer

        self._buf = b""
        self._slow = EventStreamBuffer()
        return self._botocore(rest, frames)

    def _botocore(self, chunk: bytes, frames: list[Frame]) -> tuple[list[Frame], FrameError | None]:
        from botocore.eventstream import ParserError

        self._slow.add_data(chunk)
        try:
            for message in self._slow:
                frames.append((message.headers, message.payload))
        except ParserError as exc:
            return frames, FrameError(f"bad event-stream frame: {exc}")
        return frames, None


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


def chain_credentials(profile: str | None = None) -> AwsCredentials | None:
    """The credentials of the standard AWS chain (None when it finds none)."""
    import botocore.session

    found = botocore.session.Session(profile=profile).get_credentials()
    if found is None:
        return None
    frozen = found.get_frozen_credentials()
    return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)


_SIGNERS_KEPT = 64  # signers kept per process, one per (credentials, region, service)
_signers: dict[tuple[AwsCredentials, str, str], Any] = {}


@functools.cache
def _signer_class() -> Any:
    from botocore.auth import SigV4Auth

    class DayKeySigV4(SigV4Auth):
        """botocore's SigV4 whose signing key (four HMACs of the secret, the day, the region and the
        service) is derived once per day rather than once per request."""

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self._day_key: tuple[str, bytes] = ("", b"")

        def signature(self, string_to_sign: str, request: Any) -> str:
            day = request.context["timestamp"][0:8]
            if self._day_key[0] != day:
                # botocore's own derivation (SigV4Auth.signature), kept for the day
                key = self._sign(f"AWS4{self.credentials.secret_key}".encode(), day)
                for part in (self._region_name, self._service_name, "aws4_request"):
                    key = self._sign(key, part)
                self._day_key = (day, key)
            return str(self._sign(self._day_key[1], string_to_sign, hex=True))

    return DayKeySigV4


def _signer(credentials: AwsCredentials, region: str, service: str) -> Any:
    key = (credentials, region, service)
    signer = _signers.get(key)
    if signer is None:
        from botocore.credentials import Credentials

        if len(_signers) >= _SIGNERS_KEPT:
            _signers.clear()
        signer = _signers[key] = _signer_class()(
            Credentials(credentials.access_key, credentials.secret_key, credentials.token), service, region)
    return signer


def sign(wire: WireRequest, url: str, credentials: AwsCredentials, region: str, now: datetime,
         service: str = "bedrock") -> dict[str, str]:
    """The headers of ``wire`` sent to ``url``, signed with SigV4 at ``now`` (UTC): ``X-Amz-Date``,
    ``X-Amz-Security-Token`` with a session token, and ``Authorization``. One signer per credentials,
    region and service is kept, with its signing key for the day."""
    from botocore.auth import SIGV4_TIMESTAMP
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method="POST", url=url, data=wire.body, headers=dict(wire.headers))
    signer = _signer(credentials, region, service)
    # SigV4Auth.add_auth, with the time given rather than read from the clock
    request.context["timestamp"] = now.strftime(SIGV4_TIMESTAMP)
    signer._modify_request_before_signing(request)
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    signer._inject_signature_to_request(request, signature)
    return dict(request.headers.items())
