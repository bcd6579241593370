"""``aws.sign`` against botocore's ``SigV4Auth``, the reference: the same headers, byte for byte, for
requests that vary in every part SigV4 reads (path, query, host and port, headers, body, stated payload
hash, session token, date across midnight and the year's end, region, service)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from loadbench.protocol.aws import AwsCredentials, sign
from loadbench.protocol.dialect import WireRequest
from tests.protocol.sigv4_reference import botocore_signed

BASES = ("https://bedrock-runtime.us-east-1.amazonaws.com", "http://127.0.0.1:8080", "http://localhost:80",
         "https://Bedrock-Runtime.EU-West-3.amazonaws.com:443", "https://vpce-1.bedrock.example.com:8443",
         "http://[::1]:9000", "https://[2001:db8::7]")
PATHS = ("/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
         "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude/"
         "converse-stream", "/model/anthropic.claude-v2:1/converse", "/model/a b/converse", "/model/caf\u00e9/x~y",
         "/a/./b/../c//d/", "/..", "//model//m/", "/model/m/converse/", "", "/", "/model/%2F%25/converse",
         "/base/v1/model/m/converse-stream", "/model/m!$&'()*+,;=@/converse")
QUERIES = ("", "?a=1&b=2", "?b=2&a=1", "?a=2&a=1&a=10", "?flag", "?x=%20y&y=a+b", "?k=v=w", "?=v&k=",
           "?api-version=2024-01-01&z=%7E")
HEADERS = ({}, {"Content-Type": "application/json"},
           {"Content-Type": "application/json", "Accept": "application/vnd.amazon.eventstream",
            "Accept-Encoding": "identity"},
           {"content-type": "application/json", "X-Custom": "  spaced   out\tvalue  "},
           {"Content-Type": "a", "content-type": "b"},  # one name in two spellings: both values signed
           {"User-Agent": "loadbench", "X-Amzn-Trace-Id": "Root=1", "Connection": "keep-alive", "TE": "trailers",
            "Content-Type": "application/json"},
           {"Authorization": "Bearer stale", "X-Amz-Date": "20000101T000000Z", "X-Amz-Security-Token": "old"},
           {"Date": "Mon, 01 Jan 2024 00:00:00 GMT", "Content-Type": "application/json"},
           {"Host": "bedrock-runtime.us-west-2.amazonaws.com", "Content-Type": "application/json"},
           {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
           {"x-amz-content-sha256": "", "X-Note": "caf\u00e9"})
BODIES = (b"", b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}', bytes(range(256)) * 3)
CREDENTIALS = (AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
               AwsCredentials("ASIATEMP", "s3cr3t/with+symbols=", "FwoGZXIvYXdzEJr//////////session+token=="),
               AwsCredentials("AKIDOTHER", "another-secret", ""))
REGIONS = ("us-east-1", "eu-west-3", "ap-southeast-2")
MIDNIGHT = datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
DATES = (MIDNIGHT, MIDNIGHT + timedelta(microseconds=1), MIDNIGHT + timedelta(seconds=1, microseconds=1),
         MIDNIGHT - timedelta(microseconds=500_000), datetime(2024, 2, 29, 12, 0, 0, tzinfo=UTC),
         datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


def test_every_part_of_a_request_is_signed_as_botocore_signs_it() -> None:
    rng = random.Random(20)
    cases = 0
    for _ in range(1500):
        wire = WireRequest("", rng.choice(HEADERS), rng.choice(BODIES))
        url = rng.choice(BASES) + rng.choice(PATHS) + rng.choice(QUERIES)
        creds, region, at = rng.choice(CREDENTIALS), rng.choice(REGIONS), rng.choice(DATES)
        service = rng.choice(("bedrock", "bedrock", "execute-api"))
        mine = sign(wire, url, creds, region, at, service)
        assert mine == botocore_signed(wire, url, creds, region, at, service), (url, wire.headers, at)
        assert list(mine) == list(botocore_signed(wire, url, creds, region, at, service))  # and in its order
        cases += 1
    assert cases == 1500


@pytest.mark.parametrize("at", DATES)
def test_a_signature_names_its_own_day_when_requests_cross_midnight(at: datetime) -> None:
    """Signing keys are kept per day: the key of the day before is never reused after midnight."""
    wire = WireRequest("", {"Content-Type": "application/json"}, b"{}")
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse"
    creds = CREDENTIALS[0]
    for when in (at - timedelta(days=1), at, at + timedelta(days=1), at):
        headers = sign(wire, url, creds, "us-east-1", when)
        assert headers == botocore_signed(wire, url, creds, "us-east-1", when)
        assert f"Credential=AKIDEXAMPLE/{when:%Y%m%d}/us-east-1/bedrock/aws4_request" in headers["Authorization"]


def test_the_signature_covers_the_body_the_time_and_the_secret() -> None:
    wire = WireRequest("", {"Content-Type": "application/json"}, b'{"a":1}')
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse"
    at = DATES[-1]
    base = sign(wire, url, CREDENTIALS[0], "us-east-1", at)["Authorization"]
    changed = (sign(WireRequest("", wire.headers, b'{"a":2}'), url, CREDENTIALS[0], "us-east-1", at),
               sign(wire, url, CREDENTIALS[0], "us-east-1", at + timedelta(seconds=1)),
               sign(wire, url, AwsCredentials("AKIDEXAMPLE", "other"), "us-east-1", at),
               sign(wire, url + "?x=1", CREDENTIALS[0], "us-east-1", at))
    assert all(h["Authorization"] != base for h in changed)
    assert len({h["Authorization"].rsplit("Signature=", 1)[1] for h in changed}) == len(changed)


def test_requests_of_one_second_share_nothing_but_what_they_have_in_common() -> None:
    """Within one second the parts of a signature that do not depend on the body are worked out once per
    URL, headers, credentials, region and service: any of them changing gives botocore's signature still."""
    at = datetime(2026, 6, 1, 8, 0, 0, 1000, tzinfo=UTC)
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse"
    plain = {"Content-Type": "application/json"}
    for i in range(40):
        when = at + timedelta(microseconds=i * 1000)  # all in the same second
        headers = (plain, {**plain, "X-Extra": str(i % 3)}, {"content-type": "application/json"})[i % 3]
        creds = CREDENTIALS[i % 2]
        wire = WireRequest("", headers, b'{"n":%d}' % i)
        target = url if i % 4 else url.replace("converse", "converse-stream")
        for region in ("us-east-1", "eu-west-3"):
            assert sign(wire, target, creds, region, when) == botocore_signed(wire, target, creds, region, when)
