"""The bedrock dialect and the AWS pieces it stands on (event-stream frames, SigV4): both halves against
each other, and boto3's ``bedrock-runtime`` client, which checks the frames' CRCs and signs its own
requests, as the client of a real server speaking it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import boto3
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from loadbench.errors import InputError
from loadbench.protocol.aws import AwsCredentials, chain_credentials, frame, sign
from loadbench.protocol.bedrock import BEDROCK, check_region, exception_status
from loadbench.protocol.dialect import (
    CONTENT_FILTER,
    INVALID,
    LENGTH,
    STOP,
    TOOL_CALLS,
    Answer,
    Content,
    LLMRequest,
    Message,
    Tool,
    ToolCall,
    WireError,
)
from loadbench.protocol.registry import dialect
from tests.protocol.dialect_checks import decode_split, same_for_any_split
from tests.protocol.dialect_server import USAGE, DialectServer, Script
from tests.protocol.sigv4_reference import botocore_signed

# Bedrock reports no reasoning tokens apart
BR_USAGE = replace(USAGE, reasoning_tokens=0)
MODEL = "anthropic.claude-x-v1:0"


def _stream(finish: str = STOP) -> bytes:
    enc = BEDROCK.encoder(MODEL, "r1")
    return (enc.head() + enc.content("hmm", "reasoning") + enc.content("Hel") + enc.content("lo")
            + enc.tool_call(ToolCall("tu_1", "lookup", '{"q":"x"}')) + enc.tail(finish, BR_USAGE))


def test_a_stream_decodes_to_its_content_usage_tool_call_and_end_for_any_split() -> None:
    got = same_for_any_split(BEDROCK, _stream(TOOL_CALLS))
    assert got.content == (Content("hmm", "reasoning"), Content("Hel"), Content("lo"), Content('{"q":"x"}', "tool"))
    assert got.tool_calls == (ToolCall("tu_1", "lookup", '{"q":"x"}'),) and got.tool_call
    assert (got.usage, got.finish, got.done, got.error) == (BR_USAGE, TOOL_CALLS, True, None)
    assert BEDROCK.usage_in(_stream()) == BR_USAGE


def test_every_event_is_padded_and_structure_is_never_content() -> None:
    enc = BEDROCK.encoder(MODEL, "r1")
    head, piece = enc.head(), enc.content("x")
    assert b'"p":"' in head and b'"p":"' in piece
    assert BEDROCK.decoder().feed(head).content == ()
    unpadded = type(enc)(padding=False)
    assert b'"p"' not in unpadded.head() + unpadded.content("x")


def test_a_corrupt_frame_is_refused_by_its_crc() -> None:
    raw = bytearray(_stream())
    raw[30] ^= 0xFF
    got = decode_split(BEDROCK, bytes(raw), 5)
    assert got.error is not None and got.error.kind == INVALID


@pytest.mark.parametrize(("finish", "wire"), [(STOP, "end_turn"), (LENGTH, "max_tokens"),
                                              (TOOL_CALLS, "tool_use"), (CONTENT_FILTER, "guardrail_intervened")])
def test_finish_reasons_map_both_ways(finish: str, wire: str) -> None:
    raw = BEDROCK.encoder(MODEL, "r").tail(finish, None)
    assert f'"stopReason":"{wire}"'.encode() in raw
    assert BEDROCK.decoder().feed(raw).finish_reason == finish


@pytest.mark.parametrize(("kind", "status"), [("throttlingException", 429), ("modelStreamErrorException", 424),
                                              ("validationException", 400), ("serviceUnavailableException", 503),
                                              ("internalServerException", 500)])
def test_an_exception_frame_is_the_error_with_its_status(kind: str, status: int) -> None:
    enc = BEDROCK.encoder(MODEL, "r")
    got = same_for_any_split(BEDROCK, enc.head() + enc.content("a") + enc.error(WireError("slow down", kind)))
    assert got.error == WireError("slow down", kind, status) and not got.done
    # an error answer: botocore's capitalised name, read back with the same status
    assert BEDROCK.error(status, BEDROCK.error_body("slow down", status)) == WireError("slow down", kind, status)
    assert exception_status(kind[0].upper() + kind[1:] + ":http://internal.amazon.com/coral/") == status


def test_another_protocols_error_becomes_the_exception_of_its_status() -> None:
    raw = BEDROCK.encoder(MODEL, "r").error(WireError("Overloaded", "overloaded_error", 529))
    assert BEDROCK.decoder().feed(raw).error == WireError("Overloaded", "serviceUnavailableException", 503)


def test_a_whole_answer_it_writes_decodes_back() -> None:
    answer = Answer(text="hi", finish_reason=TOOL_CALLS, usage=BR_USAGE, choices=1, tool_call=True,
                    tool_calls=(ToolCall("t1", "f", '{"a":1}'),), reasoning="because")
    assert BEDROCK.decode(BEDROCK.answer_body(answer, "r")) == answer
    assert BEDROCK.decode(BEDROCK.error_body("no", 400)).error == WireError("no", "validationException", 400)


def test_parse_request_reads_back_what_the_client_half_writes() -> None:
    req = LLMRequest(model=MODEL, messages=(
        Message("system", "be brief"), Message("user", "hi"),
        Message("assistant", "let me look", (ToolCall("c1", "f", '{"x":1}'), ToolCall("c2", "g", "{}"))),
        Message("tool", "42", tool_call_id="c1"), Message("tool", "43", tool_call_id="c2"), Message("user", "so?")),
        max_tokens=7, temperature=0.5, stream=True, tools=(Tool("f", "does f", {"type": "object"}),),
        extra={"inferenceConfig": {"topP": 0.9}, "additionalModelRequestFields": {"top_k": 5}})
    wire = BEDROCK.request(req)
    body = orjson.loads(wire.body)
    assert wire.path == "/model/anthropic.claude-x-v1%3A0/converse-stream"
    assert wire.headers["Accept"] == "application/vnd.amazon.eventstream" and "model" not in body
    assert body["inferenceConfig"] == {"topP": 0.9, "maxTokens": 7, "temperature": 0.5}
    assert BEDROCK.parse_request(wire.body, wire.path) == req
    assert BEDROCK.request(replace(req, stream=False)).path.endswith("/converse")
    assert BEDROCK.question(body) == "so?"


@pytest.mark.parametrize(("path", "body", "says"), [
    ("/model/m/invoke", b'{"messages": []}', "converse"), ("/model/m/converse", b'{"messages": 1}', "'messages'"),
    ("/model/m/converse", b'{"messages": [{"role": "user", "content": "x"}]}', "'content' list"),
    ("/model/m/converse", b'{"messages": [], "inferenceConfig": {"maxTokens": 0}}', "inferenceConfig.maxTokens")])
def test_parse_request_refuses_bad_requests(path: str, body: bytes, says: str) -> None:
    with pytest.raises(InputError, match=says):
        BEDROCK.parse_request(body, path)


def test_sign_is_sigv4_of_the_given_time_with_a_session_token() -> None:
    wire = BEDROCK.request(LLMRequest(model=MODEL, messages=(Message("user", "hi"),), stream=True))
    creds = AwsCredentials("AKIDEXAMPLE", "secret", "session-token")
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    headers = sign(wire, "https://bedrock-runtime.us-east-1.amazonaws.com" + wire.path, creds, "us-east-1", at)
    assert headers["X-Amz-Date"] == "20260102T030405Z" and headers["X-Amz-Security-Token"] == "session-token"
    assert headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-east-1/bedrock/aws4_request")
    assert sign(wire, "https://bedrock-runtime.us-east-1.amazonaws.com" + wire.path, creds, "us-east-1", at) == headers
    assert "secret" not in repr(creds) and "session-token" not in repr(creds)


def test_it_is_registered() -> None:
    assert dialect("bedrock") is BEDROCK


# ------------------------------------------------------------------ boto3 as the client
SCRIPT = Script(tool_calls=(ToolCall("tooluse_1", "lookup", '{"city":"Paris"}'),), finish=TOOL_CALLS, usage=BR_USAGE)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials in the environment, where the standard chain finds them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "test-session")
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _client(server: DialectServer) -> object:
    # a session of its own: boto3.client() shares one default session, which keeps the first credentials it found
    return boto3.session.Session().client("bedrock-runtime", region_name="us-east-1", endpoint_url=server.url,
                                          config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def _same_signature(server: DialectServer) -> None:
    """What boto3 sent, signed again by ``sign`` with boto3's own time, carries boto3's signature."""
    seen = server.seen[0]
    # the headers boto3 signed (it adds others after signing), less those sign() writes itself
    signed = seen.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {k: seen.headers[k] for k in signed if k not in ("host", "x-amz-date", "x-amz-security-token")}
    at = datetime.strptime(seen.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    creds = chain_credentials()
    assert creds == AwsCredentials("AKIDTEST", "test-secret", "test-session")
    wire = BEDROCK.request(seen.request)
    mine = sign(replace(wire, headers=headers, body=seen.body), server.url + seen.path, creds, "us-east-1", at)
    assert mine["Authorization"] == seen.headers["authorization"]


def test_boto3_converse_reads_a_whole_answer(aws_env: None) -> None:
    with DialectServer(SCRIPT) as server:
        resp = _client(server).converse(  # type: ignore[attr-defined]
            modelId=MODEL, system=[{"text": "terse"}], inferenceConfig={"maxTokens": 50},
            messages=[{"role": "user", "content": [{"text": "weather?"}]}])
    blocks = resp["output"]["message"]["content"]
    assert blocks[0]["reasoningContent"]["reasoningText"]["text"] == "let me think"
    assert blocks[1]["text"] == "Hello world"
    assert blocks[2]["toolUse"] == {"toolUseId": "tooluse_1", "name": "lookup", "input": {"city": "Paris"}}
    assert resp["stopReason"] == "tool_use"
    assert resp["usage"] == {"inputTokens": 20, "outputTokens": 9, "totalTokens": 39, "cacheReadInputTokens": 8,
                             "cacheWriteInputTokens": 2}
    seen = server.seen[0]
    assert seen.request.model == MODEL and not seen.request.stream and seen.request.max_tokens == 50
    assert seen.request.messages == (Message("system", "terse"), Message("user", "weather?"))
    assert seen.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
    _same_signature(server)


def test_boto3_converse_stream_reads_the_frames(aws_env: None) -> None:
    with DialectServer(SCRIPT) as server:
        resp = _client(server).converse_stream(  # type: ignore[attr-defined]
            modelId=MODEL, messages=[{"role": "user", "content": [{"text": "weather?"}]}])
        events = list(resp["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    deltas = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    assert "".join(d.get("text", "") for d in deltas) == "Hello world"
    assert "".join(d["reasoningContent"].get("text", "") for d in deltas if "reasoningContent" in d) == "let me think"
    assert "".join(d["toolUse"]["input"] for d in deltas if "toolUse" in d) == '{"city":"Paris"}'
    starts = [e["contentBlockStart"]["start"]["toolUse"] for e in events if "contentBlockStart" in e]
    assert starts == [{"toolUseId": "tooluse_1", "name": "lookup"}]
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"
    assert events[-1]["metadata"]["usage"]["cacheReadInputTokens"] == 8
    assert server.seen[0].request.stream and server.seen[0].path.endswith("/converse-stream")
    _same_signature(server)


def test_boto3_raises_a_throttling_exception_frame(aws_env: None) -> None:
    script = Script(stream_error=WireError("Too many requests", "throttlingException", 429))
    with DialectServer(script) as server, pytest.raises(EventStreamError) as caught:
        resp = _client(server).converse_stream(  # type: ignore[attr-defined]
            modelId=MODEL, messages=[{"role": "user", "content": [{"text": "x"}]}])
        list(resp["stream"])
    assert caught.value.response["Error"]["Code"] == "throttlingException"


def test_boto3_raises_an_error_answer_with_its_status(aws_env: None) -> None:
    script = Script(status_error=WireError("Too many requests", "throttlingException", 429))
    with DialectServer(script) as server, pytest.raises(ClientError) as caught:
        _client(server).converse(  # type: ignore[attr-defined]
            modelId=MODEL, messages=[{"role": "user", "content": [{"text": "x"}]}])
    err = caught.value.response
    assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == ("ThrottlingException", 429)


def test_frame_is_read_back_by_botocore() -> None:
    from botocore.eventstream import EventStreamBuffer

    buf = EventStreamBuffer()
    buf.add_data(frame({":event-type": "metadata", "x": "é"}, b'{"a":1}'))
    (message,) = list(buf)
    assert (message.headers, message.payload) == ({":event-type": "metadata", "x": "é"}, b'{"a":1}')


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "ap-southeast-2", "us-gov-west-1"])
def test_a_region_is_accepted(region: str) -> None:
    assert check_region(region) == region


@pytest.mark.parametrize(("region", "says"), [(None, "needs a region"), ("", "needs a region"),
                                              ("us-east", "not an AWS region"), ("US-EAST-1", "not an AWS region")])
def test_a_missing_or_malformed_region_is_refused_with_the_fix(region: str | None, says: str) -> None:
    with pytest.raises(InputError, match=says):
        check_region(region)


def test_a_kept_signer_signs_what_a_fresh_botocore_signer_signs_across_days_regions_and_keys() -> None:
    wire = BEDROCK.request(LLMRequest(model=MODEL, messages=(Message("user", "hi"),), stream=True))
    keys = (AwsCredentials("AKIDONE", "secret-one"), AwsCredentials("AKIDTWO", "secret-two", "token"))
    for at in (datetime(2026, 1, 2, 23, 59, 59, tzinfo=UTC), datetime(2026, 1, 3, 0, 0, 1, tzinfo=UTC),
               datetime(2026, 1, 2, 12, 0, 0, tzinfo=UTC)):
        for region in ("us-east-1", "eu-west-3"):
            for creds in keys:
                url = f"https://bedrock-runtime.{region}.amazonaws.com" + wire.path
                assert sign(wire, url, creds, region, at) == botocore_signed(wire, url, creds, region, at)
