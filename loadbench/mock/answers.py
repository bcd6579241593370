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
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from loadbench.eval.dataset import Case, load_dataset
from loadbench.mock import bodies
from loadbench.mock.agent import AgentPlayer
from loadbench.mock.draw import unit
from loadbench.mock.judge import MockJudge
from loadbench.mock.request import GenerationRequest
from loadbench.mock.settings import MockSettings
from loadbench.mock.stats import MockStats
from loadbench.protocol.openai import question_text

UNKNOWN_REPLY = "I am not sure what you are asking."
WORDS_PER_CHUNK = 4


def request_text(body: dict[str, Any]) -> str:
    """The request's question, whitespace normalised: the key the answer book looks cases up by."""
    return " ".join(question_text(body).split())


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


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

    def reply(self, body: dict[str, Any], g: GenerationRequest) -> Reply:
        case = self.by_text.get(request_text(body))
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


def overflow_error(g: GenerationRequest, s: MockSettings) -> web.Response | None:
    if not s.context_window or g.prompt_tokens <= s.context_window or s.overflow != "error":
        return None
    body = orjson.dumps({"error": {
        "message": f"This model's maximum context length is {s.context_window} tokens; "
                   f"the prompt has {g.prompt_tokens}", "type": "invalid_request_error",
        "code": "context_length_exceeded"}})
    return web.Response(body=body, status=400, content_type="application/json")


def _usage(r: Reply) -> dict[str, Any]:
    out: dict[str, Any] = bodies.usage(r.prompt_tokens, r.completion_tokens)
    if r.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": r.reasoning_tokens}
    return out


class Answerer:
    """What ``MockServer`` delegates to when any answer option is set."""

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

    def _reply(self, body: dict[str, Any], g: GenerationRequest) -> Reply:
        if self.judge is not None:
            verdict = self.judge.reply(body)
            if verdict is not None:
                return cut_reply(verdict, g, self.settings)
        if self.book is not None:
            return self.book.reply(body, g)
        return cut_reply(UNKNOWN_REPLY, g, self.settings)

    async def respond(self, request: web.Request, g: GenerationRequest, *, chat: bool, response_id: str,
                      ttft_s: float, itl_s: float, stats: MockStats) -> web.StreamResponse:
        t0 = time.monotonic()
        error = overflow_error(g, self.settings)
        if error is not None:
            stats.count(400)
            return error
        if self.agent is not None:  # a tool-calling request: the agent plays it (agent.py)
            played = await self.agent.respond(request, g, response_id, ttft_s, itl_s, stats)
            if played is not None:
                return played
        stats.count(200)
        body = orjson.loads(await request.read())
        r = self._reply(body if isinstance(body, dict) else {}, g)
        head = {"id": response_id, "created": int(time.time()), "model": g.model}
        if not g.stream:
            await asyncio.sleep(max(0.0, t0 + ttft_s - time.monotonic()))
            if chat:
                choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": r.text},
                                          "finish_reason": r.finish_reason}
            else:
                choice = {"index": 0, "text": r.text, "logprobs": None, "finish_reason": r.finish_reason}
            obj = "chat.completion" if chat else "text_completion"
            return web.Response(body=orjson.dumps({**head, "object": obj, "choices": [choice], "usage": _usage(r)}),
                                content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(text: str | None, finish: str | None = None, role: bool = False) -> bytes:
            if chat:
                delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else (
                    {"content": text} if text is not None else {})
                return bodies.sse({**head, "object": obj, "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish}]})
            return bodies.sse({**head, "object": obj, "choices": [
                {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}]})

        words = r.text.split(" ")
        pieces = [" ".join(words[i:i + WORDS_PER_CHUNK]) for i in range(0, len(words), WORDS_PER_CHUNK)]
        tail = chunk(None, r.finish_reason)
        if g.include_usage and not self.settings.no_usage:
            tail += bodies.sse({**head, "object": obj, "choices": [], "usage": _usage(r)})
        try:
            await resp.write(chunk(None, role=True))
            for i, piece in enumerate(pieces):
                due = t0 + ttft_s + i * itl_s
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await resp.write(chunk(piece if i == 0 else " " + piece))
            await resp.write(tail + bodies.DONE)
            await resp.write_eof()
        except ConnectionResetError:
            stats.disconnects += 1  # the client left mid-answer
        return resp
