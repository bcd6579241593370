"""The mock as the ruler for quality: answers a dataset's cases with known accuracy.

``loadbench mock --answers DATASET`` recognises a request by its last user message (or prompt),
whitespace-normalised, and answers that case:

    correct      the ground truth (fields as JSON, else label, else answer, else reference)
    wrong        another label of the dataset / the JSON with one field changed / "unknown" /
                 the first third of the reference; a wrong JSON answer is malformed JSON with
                 probability ``format_error_rate`` (a share of the wrong answers, so the measured
                 accuracy stays ``accuracy``)
All draws are hashes of (seed, case id, occurrence, purpose), so they do not depend on request
order or concurrency. Consistency: each case has a canonical draw (correct with probability
``accuracy``); its n-th request repeats the canonical draw with probability ``consistency`` and
otherwise draws afresh (again correct with probability ``accuracy``). So every call is correct
with probability ``accuracy``, and a case's k repeats all pass with probability
``a·(c + (1-c)a)^k + (1-a)·((1-c)a)^k`` (docs/eval.md).

``verbosity`` adds that many hidden reasoning tokens to every answer (billed as output:
usage.completion_tokens and completion_tokens_details.reasoning_tokens), to model a verbose
model's cost without changing what is scored. ``answer_signature`` appends a provider fingerprint
line to free-text answers (to prove the judge is blind to it). ``context_window`` rejects a
prompt longer than the window (``overflow: error``, HTTP 400 context_length_exceeded) or
answers as if it had been cut (``truncate``: usage.prompt_tokens is the window; no other flag).
A request the book does not know is answered with ``UNKNOWN_REPLY``; the visible answer is cut
at max_tokens words (finish_reason "length").

Every protocol the mock speaks gets the same answers: the request is read by its dialect's server half
(``parse_request``: the question is its last user message, or its prompt) and the answer written by
its ``answer_body`` (whole, after the TTFT) or its ``StreamEncoder`` (``AnswerStream``: WORDS_PER_CHUNK
words a chunk, paced like every stream: chunk k at TTFT + k x ITL), with the usage in its own words.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loadbench.eval.dataset import Case, load_dataset
from loadbench.mock.agent import AgentPlayer
from loadbench.mock.draw import unit
from loadbench.mock.judge import MockJudge
from loadbench.mock.request import GenerationRequest
from loadbench.mock.settings import MockSettings
from loadbench.protocol.dialect import Answer, Dialect, LLMRequest, StreamEncoder
from loadbench.protocol.openai import OpenAIDialect
from loadbench.protocol.openai import error_body as openai_error_body
from loadbench.protocol.usage import Usage

UNKNOWN_REPLY = "I am not sure what you are asking."
WORDS_PER_CHUNK = 4


def question(req: LLMRequest) -> str:
    """What a request asks: its last user message, else its prompt ("" when it has neither)."""
    users = [m.content for m in req.messages if m.role == "user"]
    return users[-1] if users else req.prompt or ""


def request_text(req: LLMRequest) -> str:
    """The request's question, whitespace normalised: the key the answer book looks cases up by."""
    return " ".join(question(req).split())


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int

    @property
    def usage(self) -> Usage:
        """The reply's usage (its hidden reasoning billed as output, and reported as reasoning)."""
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                     reasoning_tokens=self.reasoning_tokens)

    def answer(self, model: str) -> Answer:
        """The whole answer, as a dialect's ``answer_body`` writes it."""
        return Answer(text=self.text, finish_reason=self.finish_reason, usage=self.usage, model=model, choices=1)

    def pieces(self) -> list[str]:
        """The streamed chunks: WORDS_PER_CHUNK words each, every one after the first led by its space."""
        words = self.text.split(" ")
        chunks = [" ".join(words[i:i + WORDS_PER_CHUNK]) for i in range(0, len(words), WORDS_PER_CHUNK)]
        return chunks[:1] + [" " + c for c in chunks[1:]]


class AnswerBook:
    def __init__(self, cases: tuple[Case, ...], settings: MockSettings) -> None:
        self.s = settings
        self.by_text = {" ".join(c.user_text().split()): c for c in cases}
        self.labels = sorted({c.label for c in cases if c.label is not None})
        self.seen: dict[str, int] = {}

    def truth(self, case: Case) -> str:
        if case.fields is not None:
            return orjson.dumps(case.fields).decode()
        if case.label is not None:
            return case.label
        if case.answer is not None:
            a = case.answer
            return str(int(a)) if isinstance(a, float) and a.is_integer() else str(a)
        return self._signed(case.reference or "")

    def _signed(self, text: str) -> str:
        return f"{text}\n\n— {self.s.answer_signature}" if self.s.answer_signature else text

    def wrong(self, case: Case, variant: float, malformed: bool) -> str:
        if case.fields is not None:
            if malformed:
                return orjson.dumps(case.fields).decode()[:-1]
            keys = sorted(case.fields)
            if not keys:
                return '{"unexpected": true}'
            key = keys[int(variant * len(keys))]
            value = case.fields[key]
            changed: Any = (not value if isinstance(value, bool) else value + 1 if isinstance(value, int | float)
                            else value[:-1] if isinstance(value, list) and value else f"not {value}")
            return orjson.dumps({**case.fields, key: changed}).decode()
        if case.label is not None:
            others = [lab for lab in self.labels if lab != case.label] or [case.label + "_other"]
            return others[int(variant * len(others))]
        if case.answer is not None:
            if isinstance(case.answer, int | float):
                return str(case.answer + 1 + int(variant * 3))
            return "unknown"
        words = (case.reference or "").split()
        return self._signed(" ".join(words[: max(1, len(words) // 3)]) + " The rest is unclear.")

    def answer(self, case: Case) -> str:
        n = self.seen.get(case.id, 0)
        self.seen[case.id] = n + 1
        s = self.s
        if unit(s.seed, case.id, n, "keep") < s.consistency:
            key: tuple[object, ...] = (s.seed, case.id, "canonical")
        else:
            key = (s.seed, case.id, n, "fresh")
        if unit(*key, "correct") < s.accuracy:
            return self.truth(case)
        return self.wrong(case, unit(*key, "variant"), unit(*key, "format") < s.format_error_rate)

    def reply(self, req: LLMRequest, g: GenerationRequest) -> Reply:
        case = self.by_text.get(request_text(req))
        text = self.answer(case) if case is not None else UNKNOWN_REPLY
        return cut_reply(text, g, self.s)


def cut_reply(text: str, g: GenerationRequest, s: MockSettings) -> Reply:
    words = text.split(" ")
    finish = "stop"
    if len(words) > g.output_tokens:
        text, finish = " ".join(words[: g.output_tokens]), "length"
    visible = len(text.split())
    prompt_tokens = min(g.prompt_tokens, s.context_window) if s.context_window else g.prompt_tokens
    return Reply(text, finish, prompt_tokens, visible + s.verbosity, s.verbosity)


def overflow_message(g: GenerationRequest, s: MockSettings) -> str | None:
    """Why a prompt is refused (``overflow: error`` and longer than the context window), else None."""
    if not s.context_window or g.prompt_tokens <= s.context_window or s.overflow != "error":
        return None
    return f"This model's maximum context length is {s.context_window} tokens; the prompt has {g.prompt_tokens}"


def overflow_body(wire: Dialect, message: str) -> bytes:
    """The 400 of a prompt too long, in the protocol: OpenAI's and Azure's carry the code their clients
    look for (``context_length_exceeded``); the others their own invalid-request error."""
    if isinstance(wire, OpenAIDialect):
        return openai_error_body(message, "invalid_request_error", "context_length_exceeded")
    return wire.error_body(message, 400)


class AnswerStream:
    """A reply streamed by the protocol's encoder, one chunk at a time as the pacer asks for it (the
    pacer's ``Encoded``): the head before the first word, ``chunk(k)`` for each piece, the end with the
    last one."""

    __slots__ = ("_encoder", "_finish", "_pieces", "_usage")

    def __init__(self, encoder: StreamEncoder, reply: Reply, usage: Usage | None) -> None:
        self._encoder, self._finish, self._usage = encoder, reply.finish_reason, usage
        self._pieces = reply.pieces()

    def __len__(self) -> int:
        return len(self._pieces)

    def head(self) -> bytes:
        return self._encoder.head()

    def chunk(self, k: int) -> bytes:
        out = self._encoder.content(self._pieces[k])
        if k == len(self._pieces) - 1:
            out += self._encoder.tail(self._finish, self._usage)
        return out


class Answerer:
    """What ``MockServer`` delegates to when any answer option is set: what to answer, in no protocol's
    words (the server writes it in the request's protocol)."""

    def __init__(self, settings: MockSettings) -> None:
        self.settings = settings
        self.book = AnswerBook(load_dataset(Path(settings.answers)).cases, settings) if settings.answers else None
        self.judge = MockJudge(settings) if settings.judge else None
        self.agent = AgentPlayer(settings) if settings.agent else None

    @classmethod
    def from_settings(cls, settings: MockSettings) -> Answerer | None:
        if settings.answers or settings.judge or settings.context_window or settings.agent:
            return cls(settings)
        return None

    def overflow(self, g: GenerationRequest) -> str | None:
        return overflow_message(g, self.settings)

    def reply(self, req: LLMRequest, g: GenerationRequest) -> Reply:
        if self.judge is not None:
            verdict = self.judge.reply(question(req))
            if verdict is not None:
                return cut_reply(verdict, g, self.settings)
        if self.book is not None:
            return self.book.reply(req, g)
        return cut_reply(UNKNOWN_REPLY, g, self.settings)
