"""botocore's SigV4 signature of a request, the reference ``aws.sign`` is tested against."""

from __future__ import annotations

from datetime import datetime

from loadbench.protocol.aws import AwsCredentials
from loadbench.protocol.dialect import WireRequest


def botocore_signed(wire: WireRequest, url: str, creds: AwsCredentials, region: str, at: datetime,
                    service: str = "bedrock") -> dict[str, str]:
    """The headers botocore's SigV4Auth leaves on the request, a fresh signer per request (the reference)."""
    from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=url, data=wire.body, headers=dict(wire.headers))
    signer = SigV4Auth(Credentials(creds.access_key, creds.secret_key, creds.token), service, region)
    # SigV4Auth.add_auth, with the time given rather than read from the clock
    request.context["timestamp"] = at.strftime(SIGV4_TIMESTAMP)
    signer._modify_request_before_signing(request)
    signer._inject_signature_to_request(
        request, signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request))
    return dict(request.headers.items())
