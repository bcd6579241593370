"""AWS's pieces of a protocol: the ``application/vnd.amazon.eventstream`` framing and SigV4 signing.

- ``frame`` writes one event-stream message: ``[total u32][headers u32][prelude CRC32][headers]
  [payload][message CRC32]``, big-endian, headers as string values (type 7). ``FrameReader`` reads
  frames in any split through botocore's ``EventStreamBuffer``, which checks both CRCs (a well-kept
  codec beats a hand-written one; botocore has no writer, and this one is tested against its reader
  and against boto3 itself).
- ``sign`` is SigV4 (botocore's ``SigV4Auth``) over a request ``Dialect.request`` built: a pure
  function of the request, the credentials, the region and the time the caller passes in.
  ``chain_credentials`` reads the standard AWS chain (environment, profile, container or instance role).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loadbench.protocol.dialect import WireRequest

if TYPE_CHECKING:
    from botocore.eventstream import EventStreamMessage

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


class FrameReader:
    """Event-stream messages from bytes in any split; raises ``FrameError`` on a bad frame."""

    __slots__ = ("_buf", "_error")

    def __init__(self) -> None:
        from botocore.eventstream import EventStreamBuffer, ParserError

        self._buf = EventStreamBuffer()
        self._error: Any = ParserError

    def feed(self, chunk: bytes) -> Iterator[EventStreamMessage]:
        self._buf.add_data(chunk)
        try:
            yield from self._buf
        except self._error as exc:
            raise FrameError(f"bad event-stream frame: {exc}") from None


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


def sign(wire: WireRequest, url: str, credentials: AwsCredentials, region: str, now: datetime,
         service: str = "bedrock") -> dict[str, str]:
    """The headers of ``wire`` sent to ``url``, signed with SigV4 at ``now`` (UTC): ``X-Amz-Date``,
    ``X-Amz-Security-Token`` with a session token, and ``Authorization``."""
    from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=url, data=wire.body, headers=dict(wire.headers))
    signer = SigV4Auth(Credentials(credentials.access_key, credentials.secret_key, credentials.token),
                       service, region)
    # SigV4Auth.add_auth, with the time given rather than read from the clock
    request.context["timestamp"] = now.strftime(SIGV4_TIMESTAMP)
    signer._modify_request_before_signing(request)
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    signer._inject_signature_to_request(request, signature)
    return dict(request.headers.items())
