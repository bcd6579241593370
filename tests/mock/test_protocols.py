"""The mock speaks every registered protocol on its own routes, written by the dialect's server half and
read back here by the same dialect's client half (the decoder the worker uses): pings before the first
token, a thinking block before the answer, several tokens a chunk, content-filter frames, a mid-stream
error event, whole answers, errors in the protocol's own shape."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest

from loadbench.mock.settings import MockSettings, problems
from loadbench.protocol.dialect import Dialect, LLMRequest, Message
from loadbench.protocol.registry import dialect, names
from loadbench.protocol.usage import Usage
from tests.mock.test_app import run

# the protocols loadbench ships (a test elsewhere may register a toy one of its own)
PROTOCOLS = ("anthropic", "azure", "bedrock", "gemini", "openai", "openai-responses")

FAST = MockSettings(ttft_ms=1.0, itl_ms=0.5, model="mock-model")
ASK = LLMRequest(model="m", messages=(Message("system", "be brief"), Message("user", "one two three")),
                 max_tokens=6, stream=True)


def _path_base(wire: Dialect, path: str) -> str:
    """The request path on the mock (OpenAI-style paths sit under /v1)."""
    return path if any(route.split("{")[0] and path.startswith(route.split("{")[0])
                       for _, route in wire.server_routes) else "/v1" + path


def _exchange(settings: MockSettings, protocol: str, req: LLMRequest) -> tuple[int, bytes, str]:
    wire = dialect(protocol)
    written = wire.request(req, "key")

    async def scenario(session: aiohttp.ClientSession) -> tuple[int, bytes, str]:
        async with session.post(_path_base(wire, written.path), data=written.body, headers=written.headers) as resp:
            return resp.status, await resp.read(), resp.headers.get("Content-Type", "")

    return run(dataclasses.replace(settings, protocols=(protocol,)), scenario)


def _reasoning(protocol: str, tokens: int) -> int:
    """Reasoning tokens as the protocol's usage reports them (Bedrock's usage has no such count)."""
    return 0 if protocol == "bedrock" else tokens


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stream_in_every_protocol_decodes_to_the_mock_answer(protocol: str) -> None:
    settings = dataclasses.replace(FAST, pings=2, thinking_tokens=3, tokens_per_chunk=2)
    status, body, content_type = _exchange(settings, protocol, ASK)
    wire = dialect(protocol)
    assert status == 200 and content_type.startswith(wire.stream_content_type)
    decoded = wire.decoder().feed(body, end_of_stream=True)
    assert decoded.error is None and decoded.done
    channels = [(c.channel, c.text) for c in decoded.content]
    # the thinking block first (2 chunks: 2 + 1 tokens), then the answer (3 chunks of 2): never a ping
    assert channels == [("reasoning", " tok0 tok1"), ("reasoning", " tok2"),
                        ("answer", " tok0 tok1"), ("answer", " tok2 tok3"), ("answer", " tok4 tok5")]
    assert decoded.usage == Usage(prompt_tokens=5, completion_tokens=9, reasoning_tokens=_reasoning(protocol, 3))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_whole_answer_in_every_protocol(protocol: str) -> None:
    status, body, _ = _exchange(dataclasses.replace(FAST, thinking_tokens=2), protocol,
                                dataclasses.replace(ASK, stream=False))
    answer = dialect(protocol).decode(body)
    assert status == 200 and answer.error is None
    assert answer.text == " tok0 tok1 tok2 tok3 tok4 tok5"
    assert answer.usage == Usage(prompt_tokens=5, completion_tokens=8, reasoning_tokens=_reasoning(protocol, 2))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_mid_stream_error_event_in_every_protocol(protocol: str) -> None:
    settings = dataclasses.replace(FAST, stream_error_after=2, stream_error_status=529)
    status, body, _ = _exchange(settings, protocol, ASK)
    decoded = dialect(protocol).decoder().feed(body, end_of_stream=True)
    assert status == 200
    assert [c.text for c in decoded.content] == [" tok0", " tok1"]
    assert decoded.error is not None and "injected mid-stream error" in decoded.error.message
    if protocol == "anthropic":
        assert (decoded.error.kind, decoded.error.status) == ("overloaded_error", 529)


@pytest.mark.parametrize("protocol", [p for p in PROTOCOLS if p != "openai"])
def test_bad_input_and_injected_errors_answer_in_the_protocol(protocol: str) -> None:
    wire = dialect(protocol)
    status, body, _ = _exchange(dataclasses.replace(FAST, max_output_tokens=4), protocol, ASK)
    assert status == 400 and "above this mock's limit of 4" in wire.error(status, body).message
    status, body, _ = _exchange(dataclasses.replace(FAST, error_rate=1.0, error_status=503), protocol, ASK)
    assert status == 503 and "injected error" in wire.error(status, body).message


def test_pings_come_before_the_first_token_and_are_never_content() -> None:
    status, body, _ = _exchange(dataclasses.replace(FAST, pings=3), "anthropic", ASK)
    assert status == 200
    first_token = body.index(b"text_delta")
    assert body[:first_token].count(b"event: ping") == 3 and body.count(b"event: ping") == 3


def test_azure_filter_frames_are_never_content() -> None:
    status, body, _ = _exchange(dataclasses.replace(FAST, filter_every=2), "azure", ASK)
    assert status == 200
    decoded = dialect("azure").decoder().feed(body, end_of_stream=True)
    assert body.count(b"prompt_filter_results") == 1 + 3  # the prompt's, then one after every 2 chunks
    assert [c.text for c in decoded.content] == [f" tok{i}" for i in range(6)]


def test_an_unknown_protocol_is_refused_naming_the_known_ones() -> None:
    assert problems(dataclasses.replace(FAST, protocols=("grpc",)))[0][1].startswith(
        "unknown protocol 'grpc'; known: " + ", ".join(names()))


def test_one_mock_answers_every_protocol_at_once_on_its_own_routes() -> None:
    async def scenario(session: aiohttp.ClientSession) -> dict[str, str]:
        got: dict[str, str] = {}
        for protocol in PROTOCOLS:
            wire = dialect(protocol)
            written = wire.request(ASK, "key")
            async with session.post(_path_base(wire, written.path), data=written.body,
                                    headers=written.headers) as resp:
                decoded = wire.decoder().feed(await resp.read(), end_of_stream=True)
                got[protocol] = "".join(c.text for c in decoded.content)
        return got

    got = run(dataclasses.replace(FAST, protocols=PROTOCOLS), scenario)
    assert got == {p: " tok0 tok1 tok2 tok3 tok4 tok5" for p in PROTOCOLS}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_faults_answer_in_every_protocol(protocol: str) -> None:
    wire = dialect(protocol)
    faulty = dataclasses.replace(FAST, fault_rate=1.0, fault_hold_s=0.2)

    status, body, _ = _exchange(dataclasses.replace(faulty, fault="no-done"), protocol, ASK)
    decoded = wire.decoder().feed(body, end_of_stream=True)
    assert status == 200 and decoded.error is None and not decoded.done  # every token, but never the end
    assert [c.text for c in decoded.content] == [f" tok{i}" for i in range(6)]

    status, body, _ = _exchange(dataclasses.replace(faulty, fault="sse-200"), protocol, ASK)
    decoded = wire.decoder().feed(body, end_of_stream=True)
    assert status == 200 and decoded.done and len(decoded.content) == 6

    status, body, _ = _exchange(dataclasses.replace(faulty, fault="429-retry-after"), protocol, ASK)
    assert status == 429 and "injected rate limit" in wire.error(status, body).message

    with pytest.raises(aiohttp.ClientPayloadError):  # half the content, then the connection is reset
        _exchange(dataclasses.replace(faulty, fault="cut-mid-stream"), protocol, ASK)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_endless_whole_answer_grows_inside_the_protocols_own_body(protocol: str) -> None:
    wire = dialect(protocol)
    whole = dataclasses.replace(ASK, stream=False)
    written = wire.request(whole, "key")

    async def endless(session: aiohttp.ClientSession) -> bytes:
        got = b""
        async with session.post(_path_base(wire, written.path), data=written.body, headers=written.headers) as resp:
            try:
                while len(got) < 200_000 and (piece := await resp.content.read(65536)):
                    got += piece
            except aiohttp.ClientPayloadError:
                pass  # the hold ran out and the mock reset the connection
        return got

    settings = dataclasses.replace(FAST, protocols=(protocol,), fault="endless-event", fault_hold_s=0.3)
    got = run(settings, endless)
    before = got[:got.index(b"x" * 64)]
    assert len(got) - len(before) > 50_000 and set(got[len(before):]) == {ord("x")}
    _, normal, _ = _exchange(FAST, protocol, whole)
    text = b" tok0 tok1 tok2 tok3 tok4 tok5"
    after = normal[normal.index(text) + len(text):]
    # what grew is the answer's text: closed as a normal answer closes, the body is that protocol's answer
    assert wire.decode(before + b"grown" + after).text == "grown"
