"""AWS's pieces of a protocol: the ``application/vnd.amazon.eventstream`` framing and SigV4 signing.

- ``frame`` writes one event-stream message: ``[total u32][headers u32][prelude CRC32][headers]
  [payload][message CRC32]``, big-endian, headers as string values (type 7). ``FrameReader`` reads
  frames in any split, both CRCs checked. botocore's ``EventStreamBuffer`` is the reference codec (a
  well-kept one beats a hand-written one): the reader reads the common frame itself (both CRCs with
  ``zlib.crc32`` on the frame's bytes, lengths within botocore's limits, string headers), at a fifth
  of botocore's per-frame cost, and hands every other frame, and the rest of the stream, to botocore,
  so that whatever botocore refuses, raises or accepts stays exactly that. botocore has no writer;
  this one is tested against its reader and against boto3 itself.
- ``sign`` is SigV4 over a request ``Dialect.request`` built: a pure function of the request, the
  credentials, the region and the time the caller passes in. It is written here (botocore's
  ``SigV4Auth`` costs 150 us a request, see ``sign``) and tested against botocore's, byte for byte.
  ``chain_credentials`` reads botocore's standard AWS chain (environment, profile, container or instance
  role); commands look credentials up through ``config.credentials.aws_credentials``, which calls it.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlsplit

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
_crc32 = zlib.crc32

# header sections read so far, by their bytes, shared by every reader of the process: a stream repeats
# a few (one per event type, the same in every stream of a service), so each is read once a process
# rather than once a stream. Bounded: cleared when full (a stream of ever-new sections only re-reads).
_SECTIONS: dict[bytes, dict[str, Any]] = {}
_KEPT_SECTIONS = 64
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
    dict, in every reader of the process: callers read it, never change it."""

    __slots__ = ("_buf", "_slow")

    def __init__(self) -> None:
        self._buf = b""
        self._slow: Any = None  # botocore's EventStreamBuffer, once a frame needed it

    def feed(self, chunk: bytes) -> tuple[list[Frame], FrameError | None]:
        if self._slow is not None:
            return self._botocore(chunk, [])
        buf = self._buf + chunk if self._buf else chunk
        frames: list[Frame] = []
        start, size = 0, len(buf)
        crc32, prelude, u32, seen = zlib.crc32, _PRELUDE.unpack_from, _U32.unpack_from, _SECTIONS
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
                if len(seen) >= _KEPT_SECTIONS:
                    seen.clear()
                seen[head] = headers
            frames.append((headers, buf[headers_end:end - 4]))
            start = end
        self._buf = buf[start:] if start else buf
        return frames, None

    def whole(self, chunk: bytes) -> Frame | None:
        """The message ``chunk`` is, when the reader holds nothing, ``chunk`` is exactly one frame, both CRCs
        match and its header section is one a reader of the process has read before (a stream's common
        read, once per token); None for anything else, which the caller then hands to ``feed`` (nothing
        is consumed). What it accepts, ``feed`` accepts alike: the same checks, in one pass and no list."""
        if self._buf or self._slow is not None:
            return None
        try:
            total, headers_bytes, prelude_crc = _PRELUDE.unpack_from(chunk)
        except struct.error:  # shorter than a prelude
            return None
        if total != len(chunk) or not 0 <= total - headers_bytes - 16 <= _MAX_PAYLOAD_BYTES:
            return None
        headers_end = 12 + headers_bytes
        headers = _SECTIONS.get(chunk[12:headers_end])
        # the message CRC covers the prelude and its CRC: one crc32 over all but the last four bytes
        if headers is None or _crc32(chunk[:8]) != prelude_crc \
                or _crc32(chunk[:-4]) != _U32.unpack_from(chunk, total - 4)[0]:
            return None
        return headers, chunk[headers_end:-4]

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


# SigV4 (AWS's Signature Version 4, the algorithm botocore's ``SigV4Auth`` implements), here rather than
# through botocore: botocore builds an ``AWSRequest``, an email-style header map and a prepared copy of the
# request for every signature and parses the URL three times, 150 us a request, a quarter of the gateway's
# CPU on a Bedrock route. Only the per-request part is done per request (the body's hash and two more
# SHA-256s): the URL's host, canonical path and query once per URL, the signing key once per secret, day,
# region and service, the rest once a second per shape of request (``_Plan``). botocore stays the
# reference: the tests sign varied requests with both and compare the headers byte for byte.
_ALGORITHM = "AWS4-HMAC-SHA256"
_TIMESTAMP = "%Y%m%dT%H%M%SZ"  # botocore.auth.SIGV4_TIMESTAMP
# botocore.auth.SIGNED_HEADERS_BLACKLIST: headers a proxy or client may change after signing
_UNSIGNED_HEADERS = frozenset({"baggage", "connection", "expect", "keep-alive", "proxy-authenticate",
                               "proxy-authorization", "te", "traceparent", "tracestate", "trailer",
                               "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_KEPT = 64  # URLs, signing keys and a second's plans kept per process (a gateway has a few targets, each a few paths)
_urls: dict[str, tuple[str, str, str]] = {}
_keys: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 with empty segments dropped too, as AWS wants (botocore.utils.remove_dot_segments)."""
    if not path:
        return "/"
    out: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if out:
                out.pop()
        elif part and part != ".":
            out.append(part)
    return ("/" if path[0] == "/" else "") + "/".join(out) + ("/" if path[-1] == "/" and out else "")


def _url_parts(url: str) -> tuple[str, str, str]:
    """(host header, canonical path, canonical query) of ``url``, as botocore derives them."""
    parts = _urls.get(url)
    if parts is None:
        split = urlsplit(url)
        host = split.hostname or ""
        if ":" in host:  # an IPv6 address: the host header brackets it
            host = f"[{host}]"
        port = split.port
        if port is not None and port != _DEFAULT_PORTS.get(split.scheme):
            host = f"{host}:{port}"
        # the path is URI-encoded once more, whatever it holds already (every service but S3)
        path = quote(_remove_dot_segments(split.path), safe="/~")
        # the query as written, its pairs sorted (botocore encodes none of it again)
        query = "&".join(f"{k}={v}" for k, v in sorted(q.partition("=")[::2] for q in split.query.split("&"))) \
            if split.query else ""
        if len(_urls) >= _KEPT:
            _urls.clear()
        parts = _urls[url] = (host, path, query)
    return parts


def _signing_key(secret: str, day: str, region: str, service: str) -> tuple[Any, Any]:
    """The day's signing key (four HMACs of the secret, once per secret, day, region and service) as the
    SHA-256 states of HMAC's inner and outer padded keys (RFC 2104): a signature then costs two hash
    copies and updates, a third of what ``hmac.digest`` costs (OpenSSL sets up an HMAC per call)."""
    cache_key = (secret, day, region, service)
    pads = _keys.get(cache_key)
    if pads is None:
        key = f"AWS4{secret}".encode()
        for part in (day, region, service, "aws4_request"):
            key = hmac.digest(key, part.encode(), "sha256")
        block = key.ljust(64, b"\0")  # a 32-byte key, padded to SHA-256's block
        pads = (hashlib.sha256(bytes(b ^ 0x36 for b in block)), hashlib.sha256(bytes(b ^ 0x5C for b in block)))
        if len(_keys) >= _KEPT:
            _keys.clear()
        _keys[cache_key] = pads
    return pads


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a signature at one second shares with every other of the same URL, headers, credentials,
    region and service: all of it but the body's hash and what follows from it."""

    headers: list[tuple[str, str]]  # the signed request's headers, Authorization still to add
    canonical_head: str  # the canonical request up to the payload hash
    stated_hash: str | None  # an X-Amz-Content-SHA256 header's value, signed as the payload hash
    to_sign_head: str  # the string to sign up to the canonical request's hash
    auth_head: str  # the Authorization header up to the signature
    pads: tuple[Any, Any]  # the signing key as HMAC's padded states


_plans: dict[tuple[Any, ...], _Plan] = {}  # the plans of the current second, keyed with its timestamp
_last: list[tuple[Any, str]] = [(None, "")]  # that second and its timestamp


def _plan(wire: WireRequest, url: str, credentials: AwsCredentials, region: str, service: str, now: datetime,
          stamp: str) -> _Plan:
    day = stamp[:8]
    replaced = {"authorization", "x-amz-date"}
    added: list[tuple[str, str]] = []
    lower = [name.lower() for name in wire.headers]
    if "date" in lower:
        # botocore signs an HTTP Date header rather than adding X-Amz-Date when the request has one
        replaced.add("date")
        added.append(("Date", formatdate(calendar.timegm(now.utctimetuple()))))
    else:
        added.append(("X-Amz-Date", stamp))
    if credentials.token:
        replaced.add("x-amz-security-token")
        added.append(("X-Amz-Security-Token", credentials.token))
    headers = [(name, value) for name, low, value in zip(wire.headers, lower, wire.headers.values(), strict=True)
               if low not in replaced]
    headers += added
    host, path, query = _url_parts(url)
    signed: dict[str, list[str]] = {}
    for name, value in headers:
        low = name.lower()
        if low not in _UNSIGNED_HEADERS:
            signed.setdefault(low, []).append(value)
    if "host" not in signed:
        signed["host"] = [host]
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{','.join(' '.join(v.split()) for v in signed[n])}\n" for n in names)
    signed_names = ";".join(sorted(n.strip() for n in names))
    # a payload hash the request states (UNSIGNED-PAYLOAD, say) is signed as stated
    stated = next((v for n, v in headers if n.lower() == "x-amz-content-sha256"), None)
    scope = f"{day}/{region}/{service}/aws4_request"
    return _Plan(headers, f"POST\n{path}\n{query}\n{canonical_headers}\n{signed_names}\n", stated,
                 f"{_ALGORITHM}\n{stamp}\n{scope}\n",
                 f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, SignedHeaders={signed_names}, Signature=",
                 _signing_key(credentials.secret_key, day, region, service))


def sign(wire: WireRequest, url: str, credentials: AwsCredentials, region: str, now: datetime,
         service: str = "bedrock") -> dict[str, str]:
    """The headers of ``wire`` sent to ``url``, signed with SigV4 at ``now`` (UTC): ``wire``'s headers less
    any ``Authorization``, then ``X-Amz-Date`` (or, when ``wire`` has a ``Date``, that date rewritten),
    ``X-Amz-Security-Token`` with a session token, and ``Authorization``; the same headers, in the same
    order, that botocore's ``SigV4Auth.add_auth`` leaves on the request. A pure function of its arguments:
    what does not depend on the body is worked out once a second per URL, headers, credentials, region
    and service (``_Plan``), since a gateway sends the same few shapes of request many times a second."""
    second = now.replace(microsecond=0)
    last = _last[0]
    if last[0] != second:  # strftime costs as much as the rest of a planned signature: once a second
        last = _last[0] = (second, second.strftime(_TIMESTAMP))
        _plans.clear()
    stamp: str = last[1]
    key = (stamp, url, credentials, region, service, *wire.headers.items())
    plan = _plans.get(key)
    if plan is None:
        if len(_plans) >= _KEPT:
            _plans.clear()
        plan = _plans[key] = _plan(wire, url, credentials, region, service, second, stamp)
    payload_hash = plan.stated_hash
    if payload_hash is None:
        payload_hash = hashlib.sha256(wire.body).hexdigest()
    inner, outer = plan.pads[0].copy(), plan.pads[1].copy()
    inner.update((plan.to_sign_head + hashlib.sha256((plan.canonical_head + payload_hash).encode()).hexdigest())
                 .encode())
    outer.update(inner.digest())
    out = dict(plan.headers)
    out["Authorization"] = plan.auth_head + outer.hexdigest()
    return out
