"""The answer options answer in every protocol the mock speaks: ``--answers`` (the dataset's truth), the
judge mode (grades and pairwise verdicts), ``--context-window`` (a 400 in the protocol's own error) and
``--agent`` (a tool call), streamed and whole. Each request is written by the protocol's client half and
its answer read back by the same dialect's decoder, as the worker and the eval runner read them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import orjson
import pytest

from loadbench.eval.criteria import RubricItem
from loadbench.eval.judging import pair_prompt, single_prompt
from loadbench.mock.answers import WORDS_PER_CHUNK
from loadbench.mock.settings import MockSettings
from loadbench.protocol.dialect import LENGTH, STOP, TOOL_CALLS, LLMRequest, Message, Tool
from loadbench.protocol.registry import dialect
from loadbench.protocol.usage import Usage
from tests.mock.test_protocols import PROTOCOLS, _exchange, _reasoning

QUESTION = "What is the capital   of France?"
TRUTH = "The capital of France is Paris, a city on the Seine."  # 11 words: 3 chunks of 4, 4, 3
SYSTEM = "be brief"
FAST = MockSettings(ttft_ms=1.0, itl_ms=0.5, model="mock-model")


def _ask(question: str, *, stream: bool, max_tokens: int = 64, **kw: object) -> LLMRequest:
    return LLMRequest(model="answer-model", messages=(Message("system", SYSTEM), Message("user", question)),
                      max_tokens=max_tokens, stream=stream, **kw)  # type: ignore[arg-type]


def _prompt_tokens(question: str) -> int:
    return len(SYSTEM.split()) + len(question.split())


@pytest.fixture
def answers(tmp_path: Path) -> MockSettings:
    data = tmp_path / "cases.jsonl"
    data.write_text(json.dumps({"id": "c1", "messages": [{"role": "user", "content": "What is the capital of France?"}],
                                "reference": TRUTH}) + "\n")
    return dataclasses.replace(FAST, answers=str(data), verbosity=3)


def _read(protocol: str, settings: MockSettings, req: LLMRequest) -> tuple[list[str], str, Usage | None, str | None]:
    """(the content chunks' texts, the whole text, usage, finish reason) of the mock's answer."""
    status, body, content_type = _exchange(settings, protocol, req)
    wire = dialect(protocol)
    assert status == 200, body[:300]
    if req.stream:
        assert content_type.startswith(wire.stream_content_type)
        decoded = wire.decoder().feed(body, end_of_stream=True)
        assert decoded.error is None and decoded.done
        texts = [c.text for c in decoded.content]
        return texts, "".join(texts), decoded.usage, decoded.finish_reason
    answer = wire.decode(body)
    assert answer.error is None
    return [answer.text], answer.text, answer.usage, answer.finish_reason


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_answer_book_answers_in_every_protocol(protocol: str, stream: bool, answers: MockSettings) -> None:
    texts, text, usage, finish = _read(protocol, answers, _ask(QUESTION, stream=stream))
    assert text == TRUTH  # found by the normalised last user message, whatever the protocol
    if stream:
        words = TRUTH.split(" ")
        assert texts == [" ".join(words[:4]), " " + " ".join(words[4:8]), " " + " ".join(words[8:])]
        assert len(texts) == -(-len(words) // WORDS_PER_CHUNK)
    assert usage == Usage(prompt_tokens=_prompt_tokens(QUESTION), completion_tokens=11 + 3,
                          reasoning_tokens=_reasoning(protocol, 3))  # the verbosity's hidden reasoning, billed
    assert finish == STOP


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_unknown_question_and_max_tokens_cut_in_every_protocol(protocol: str, answers: MockSettings) -> None:
    _, text, usage, finish = _read(protocol, answers, _ask(QUESTION, stream=True, max_tokens=5))
    assert (text, finish) == ("The capital of France is", LENGTH)
    assert usage is not None and usage.completion_tokens == 5 + 3
    _, text, _, _ = _read(protocol, answers, _ask("Something else entirely?", stream=False))
    assert text == "I am not sure what you are asking."


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_judge_grades_and_compares_in_every_protocol(protocol: str) -> None:
    judge = dataclasses.replace(FAST, judge=True)
    rubric = [RubricItem("accuracy", "is it right"), RubricItem("tone", "is it polite")]
    grade = single_prompt(rubric, reference="Paris is the capital", answer="Paris is the capital", question="q?")
    _, text, usage, _ = _read(protocol, judge, _ask(grade, stream=True))
    assert orjson.loads(text) == {"accuracy": 5, "tone": 5}
    assert usage is not None and usage.completion_tokens == len(text.split())
    pair = pair_prompt("Paris is the capital", "I do not know", "Paris is the capital", "q?")
    _, text, _, _ = _read(protocol, judge, _ask(pair, stream=False))
    assert orjson.loads(text) == {"winner": "B"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_prompt_beyond_the_context_window_is_refused_in_the_protocol(protocol: str, answers: MockSettings) -> None:
    wire = dialect(protocol)
    settings = dataclasses.replace(answers, context_window=4)
    for stream in (True, False):
        status, body, _ = _exchange(settings, protocol, _ask(QUESTION, stream=stream))
        assert status == 400
        assert "maximum context length is 4 tokens; the prompt has 8" in wire.error(status, body).message
    if protocol in ("openai", "azure"):  # the code OpenAI's clients look for
        assert orjson.loads(body)["error"]["code"] == "context_length_exceeded"
    _, text, usage, _ = _read(protocol, dataclasses.replace(settings, overflow="truncate"),
                              _ask(QUESTION, stream=True))
    assert text == TRUTH and usage is not None and usage.prompt_tokens == 4  # as if the prompt had been cut


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_agent_calls_its_tools_in_every_protocol(protocol: str, tmp_path: Path) -> None:
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps([{"id": "t1", "goal": "Refund A1 please", "facts": ["R-A1"],
                                  "gold": [{"tool": "lookup", "arguments": {"order_id": "A1"}}],
                                  "tools": [{"name": "lookup", "parameters": {"required": ["order_id"]}}]}]))
    settings = dataclasses.replace(FAST, agent=str(plans), accuracy=1.0)
    tools = (Tool("lookup", "find an order", {"type": "object", "properties": {"order_id": {"type": "string"}}}),)
    wire = dialect(protocol)
    for stream in (True, False):
        req = LLMRequest(model="agent-model", messages=(Message("user", "Refund A1 please"),), max_tokens=50,
                         stream=stream, tools=tools)
        status, body, _ = _exchange(settings, protocol, req)
        assert status == 200, body[:300]
        if stream:
            decoded = wire.decoder().feed(body, end_of_stream=True)
            calls, finish = decoded.tool_calls, decoded.finish_reason
        else:
            answer = wire.decode(body)
            calls, finish = answer.tool_calls, answer.finish_reason
        assert [(c.name, orjson.loads(c.arguments)) for c in calls] == [("lookup", {"order_id": "A1"})]
        assert finish == TOOL_CALLS
