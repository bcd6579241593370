"""Real clients no one here wrote read the mock's answers in their own protocols: the official ``openai``
SDK (chat completions, ``AzureOpenAI``, ``responses.create``), ``anthropic``, ``boto3``'s
``bedrock-runtime`` (which checks every event-stream frame's CRCs) and ``google-genai``, each against one
``loadbench mock`` process speaking all six protocols with ``--answers``, then ``--judge``, then a fault.
Each reads the dataset's truth, the judge's verdict and the usage exactly, streamed and whole; if an SDK
rejected what the mock sends, the bytes would be wrong."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import anthropic
import boto3
import openai
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from loadbench.eval.criteria import RubricItem
from loadbench.eval.judging import single_prompt
from loadbench.procs import ServerProcess, start_server
from tests.mock.test_protocols import PROTOCOLS

QUESTION = "What is the capital of France?"
TRUTH = "The capital of France is Paris, a city on the Seine."
SYSTEM = "be brief"
PROMPT_TOKENS = len(SYSTEM.split()) + len(QUESTION.split())  # the mock counts the words of every turn
VERBOSITY = 3  # hidden reasoning tokens the mock bills with every answer


class Read(NamedTuple):
    text: str
    prompt_tokens: int
    output_tokens: int  # every output token, reasoning included
    reasoning_tokens: int | None  # None: the protocol's usage has no such count


def _mock(*args: str) -> Iterator[ServerProcess]:
    server = start_server(["mock", "--port", "0", "--ttft-ms", "2", "--itl-ms", "1",
                           *(a for p in PROTOCOLS for a in ("--protocol", p)), *args])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("answers") / "cases.jsonl"
    data.write_text(json.dumps({"id": "c1", "messages": [{"role": "user", "content": QUESTION}],
                                "reference": TRUTH}) + "\n")
    yield from _mock("--answers", str(data), "--verbosity", str(VERBOSITY))


@pytest.fixture(scope="module")
def judge() -> Iterator[ServerProcess]:
    yield from _mock("--judge")


@pytest.fixture(scope="module")
def throttled() -> Iterator[ServerProcess]:
    yield from _mock("--fault", "429-retry-after", "--fault-retry-after-s", "0")


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials where boto3's standard chain finds them (the mock reads no signature)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDMOCK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "mock-secret")
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


# ------------------------------------------------------------------ one question, asked by each SDK
def _openai(mock: ServerProcess, question: str, stream: bool) -> Read:
    client = openai.OpenAI(api_key="sk-mock", base_url=mock.base_url, max_retries=0)
    return _chat(client, "gpt-mock", question, stream)


def _azure(mock: ServerProcess, question: str, stream: bool) -> Read:
    client = openai.AzureOpenAI(azure_endpoint=mock.url, api_key="azkey", api_version="2024-10-21", max_retries=0)
    return _chat(client, "my-deployment", question, stream)


def _chat(client: openai.OpenAI, model: str, question: str, stream: bool) -> Read:
    messages: Any = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    if stream:
        chunks = list(client.chat.completions.create(model=model, messages=messages, max_tokens=64, stream=True,
                                                     stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        usage = chunks[-1].usage
    else:
        resp = client.chat.completions.create(model=model, messages=messages, max_tokens=64)
        text, usage = resp.choices[0].message.content or "", resp.usage
    assert usage is not None
    details = usage.completion_tokens_details
    return Read(text, usage.prompt_tokens, usage.completion_tokens, details.reasoning_tokens if details else 0)


def _responses(mock: ServerProcess, question: str, stream: bool) -> Read:
    client = openai.OpenAI(api_key="sk-mock", base_url=mock.base_url, max_retries=0)
    if stream:
        events = list(client.responses.create(model="gpt-mock", instructions=SYSTEM, input=question,
                                              max_output_tokens=64, stream=True))
        assert events[-1].type == "response.completed"
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
        final = events[-1].response  # type: ignore[union-attr]
        assert final.output_text == text
    else:
        final = client.responses.create(model="gpt-mock", instructions=SYSTEM, input=question, max_output_tokens=64)
        text = final.output_text
    usage = final.usage
    assert usage is not None
    return Read(text, usage.input_tokens, usage.output_tokens, usage.output_tokens_details.reasoning_tokens)


def _anthropic(mock: ServerProcess, question: str, stream: bool) -> Read:
    client = anthropic.Anthropic(api_key="sk-ant-mock", base_url=mock.url, max_retries=0)
    messages: Any = [{"role": "user", "content": question}]
    if stream:
        with client.messages.stream(model="claude-mock", max_tokens=64, system=SYSTEM, messages=messages) as events:
            deltas = "".join(e.delta.text for e in events
                             if e.type == "content_block_delta" and e.delta.type == "text_delta")
            msg = events.get_final_message()
        assert deltas == "".join(b.text for b in msg.content if b.type == "text")
    else:
        msg = client.messages.create(model="claude-mock", max_tokens=64, system=SYSTEM, messages=messages)
    text = "".join(b.text for b in msg.content if b.type == "text")
    return Read(text, msg.usage.input_tokens, msg.usage.output_tokens, None)


def _bedrock(mock: ServerProcess, question: str, stream: bool) -> Read:
    client: Any = boto3.session.Session().client("bedrock-runtime", region_name="us-east-1", endpoint_url=mock.url,
                                                 config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    ask: dict[str, Any] = {"modelId": "amazon.nova-mock", "system": [{"text": SYSTEM}],
                           "messages": [{"role": "user", "content": [{"text": question}]}],
                           "inferenceConfig": {"maxTokens": 64}}
    if stream:
        events = list(client.converse_stream(**ask)["stream"])  # botocore checks every frame's CRCs
        text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
        usage = events[-1]["metadata"]["usage"]
    else:
        resp = client.converse(**ask)
        text = "".join(b.get("text", "") for b in resp["output"]["message"]["content"])
        usage = resp["usage"]
    return Read(text, usage["inputTokens"], usage["outputTokens"], None)


def _gemini(mock: ServerProcess, question: str, stream: bool) -> Read:
    client = genai.Client(api_key="gkey", http_options=types.HttpOptions(base_url=mock.url, api_version="v1beta"))
    config = types.GenerateContentConfig(system_instruction=SYSTEM, max_output_tokens=64)
    if stream:
        chunks = list(client.models.generate_content_stream(model="gemini-mock", contents=question, config=config))
        text = "".join(c.text or "" for c in chunks)
        meta = chunks[-1].usage_metadata
    else:
        resp = client.models.generate_content(model="gemini-mock", contents=question, config=config)
        text, meta = resp.text or "", resp.usage_metadata
    assert meta is not None
    thoughts = meta.thoughts_token_count or 0
    return Read(text, meta.prompt_token_count or 0, (meta.candidates_token_count or 0) + thoughts, thoughts)


SDKS: dict[str, Callable[[ServerProcess, str, bool], Read]] = {
    "openai": _openai, "azure": _azure, "openai-responses": _responses, "anthropic": _anthropic,
    "bedrock": _bedrock, "gemini": _gemini}


def test_every_protocol_has_its_sdk_here() -> None:
    assert sorted(SDKS) == sorted(PROTOCOLS)


# ------------------------------------------------------------------ the tests
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_sdk_reads_the_answer_books_truth_and_usage(protocol: str, stream: bool, book: ServerProcess) -> None:
    read = SDKS[protocol](book, QUESTION, stream)
    reasoning = None if protocol in ("anthropic", "bedrock") else VERBOSITY
    assert read == Read(TRUTH, PROMPT_TOKENS, len(TRUTH.split()) + VERBOSITY, reasoning)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_sdk_reads_the_judges_grades(protocol: str, judge: ServerProcess) -> None:
    prompt = single_prompt([RubricItem("accuracy", "is it right")], reference="Paris is the capital",
                           answer="Paris is the capital", question="q?")
    read = SDKS[protocol](judge, prompt, protocol in ("anthropic", "bedrock", "gemini"))
    assert orjson.loads(read.text) == {"accuracy": 5}
    assert read.output_tokens == len(read.text.split())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_sdk_raises_the_injected_rate_limit_as_429(protocol: str, throttled: ServerProcess) -> None:
    errors: tuple[type[BaseException], ...] = (openai.RateLimitError, anthropic.RateLimitError, ClientError,
                                               genai_errors.ClientError)
    with pytest.raises(errors) as caught:
        SDKS[protocol](throttled, QUESTION, False)
    err: Any = caught.value
    status = (err.response["ResponseMetadata"]["HTTPStatusCode"] if isinstance(err, ClientError)
              else err.code if isinstance(err, genai_errors.ClientError) else err.status_code)
    assert status == 429
    if isinstance(err, ClientError):
        assert err.response["Error"]["Code"] == "ThrottlingException"


def test_a_question_the_book_does_not_hold_gets_the_fixed_reply(book: ServerProcess) -> None:
    assert SDKS["anthropic"](book, "Something else?", False).text == "I am not sure what you are asking."
