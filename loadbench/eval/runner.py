"""The eval runner: calls every (target, case, repeat) and appends each scored call as it finishes.

Layer 4 (imports the aiohttp client only). Per target, repeats run one after another, each in a
fresh ``aiohttp.ClientSession`` (new connections, no cookies or client state carried over) with
the case order shuffled by ``(seed, target, repeat)``; within a repeat at most ``concurrency``
calls are in flight. Targets run side by side, each with its own bound.

Each endpoint speaks its registered dialect (``Endpoint.protocol``, ``openai`` unless said), which
writes the request and decodes the answer; a call's outcome is a ``loadbench.outcomes`` word.
Timing follows the workers' rules: every timestamp is ``perf_counter_ns`` when a socket read
returns; TTFT = first chunk whose delta carries text − send; E2E = end of stream − send.
A call is retried (``retries``) on 429, 5xx, connection errors and cut streams; every attempt's
spend counts.
An HTTP error costs nothing (no tokens are billed); a stream cut or timed out after content is
priced by estimate (prompt words + received words) and marked ``usage_estimated``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from loadbench import outcomes
from loadbench.eval.criteria import LATE_TYPES, Output, Score, score
from loadbench.eval.dataset import Case
from loadbench.eval.probes import Probe, judge_probe, probes
from loadbench.eval.records import CallRecord
from loadbench.eval.scorecard import ProbeResult
from loadbench.eval.suite import Suite
from loadbench.pricing import Price, Usage, call_cost
from loadbench.protocol.aws import AwsCredentials, sign
from loadbench.protocol.dialect import INVALID, Dialect, LLMRequest, Message, ToolCall
from loadbench.protocol.keepalive import post
from loadbench.protocol.registry import DEFAULT, dialect

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CACHE_HEADER = "x-loadbench-cache"


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    base_url: str  # .../v1
    model: str
    api_key: str | None = field(default=None, repr=False)  # never logged or written
    price: Price | None = None
    protocol: str = DEFAULT  # the registered dialect the endpoint speaks
    region: str | None = None  # bedrock: the AWS region each request is signed for (SigV4)
    aws_credentials: AwsCredentials | None = field(default=None, repr=False)  # never logged or written


@dataclass(frozen=True, slots=True)
class Reply:
    ok: bool
    text: str
    finish_reason: str | None
    usage: Usage
    usage_estimated: bool
    status: int | None
    error: str | None
    cache: str | None
    ttft_ms: float | None
    e2e_ms: float | None
    outcome: str = ""  # a loadbench.outcomes word ("" for a reply not measured here, e.g. read from a log)
    tool_calls: tuple[ToolCall, ...] = ()  # the calls the answer makes, whole, in order

    @property
    def retryable(self) -> bool:
        """429, 5xx, a connection error or a cut stream (even after a 200); never a timeout (a
        second full wait) or another 4xx (the same request would fail the same way)."""
        if self.ok or self.outcome == outcomes.TIMEOUT or self.error == "timeout":
            return False
        return self.outcome in outcomes.RETRYABLE or self.status is None or self.status in RETRY_STATUSES


def case_request(case: Case, model: str, suite: Suite, *, stream: bool) -> LLMRequest:
    """The case as loadbench's own request (its endpoint's dialect writes the body)."""
    messages: tuple[Message, ...] = ()
    if case.messages is not None:
        messages = tuple(Message(r, c) for r, c in case.messages)
        if suite.system and not any(r == "system" for r, _ in case.messages):
            messages = (Message("system", suite.system), *messages)
    return LLMRequest(model=model, messages=messages, prompt=None if case.messages is not None else case.prompt,
                      max_tokens=case.max_tokens or suite.max_tokens, temperature=suite.temperature, stream=stream)


def probe_request(probe: Probe, model: str) -> LLMRequest:
    return LLMRequest(model=model, messages=tuple(Message(r, c) for r, c in probe.messages),
                      max_tokens=probe.max_tokens, stream=True, extra=probe.extra)


def _estimate(req: LLMRequest, text: str) -> Usage:
    words = sum(len(m.content.split()) for m in req.messages) + len((req.prompt or "").split())
    return Usage(prompt_tokens=words, completion_tokens=len(text.split()))


def _failed(outcome: str, error: str, status: int | None, cache: str | None, text: str = "",
            finish: str | None = None, usage: Usage | None = None) -> Reply:
    """A failed call; ``usage`` is an estimate when given (the tokens a cut call was still billed)."""
    return Reply(False, text, finish, usage or Usage(), usage is not None, status, error, cache, None, None, outcome)


def _whole_reply(raw: bytes, wire: Dialect, status: int, cache: str | None, e2e_ms: float) -> Reply:
    """A non-streamed 200 body; anything but an answer of the protocol is a failed call, never a crash."""
    answer = wire.decode(raw)
    if answer.error is not None or not answer.choices:
        return _failed(outcomes.INVALID_ANSWER, f"unparsable body: {raw[:80]!r}", status, cache)
    return Reply(True, answer.text, answer.finish_reason, answer.usage or Usage(), answer.usage is None, status,
                 None, cache, e2e_ms, e2e_ms, outcomes.OK, answer.tool_calls)


async def chat(session: aiohttp.ClientSession, ep: Endpoint, req: LLMRequest, timeout_s: float,
               headers: Mapping[str, str] | None = None) -> Reply:
    """One streamed (or plain) call in the endpoint's protocol; never raises for a failed call.
    ``headers`` are added to the dialect's (an agent trial's trace id)."""
    wire = dialect(ep.protocol)
    sent = wire.request(req, ep.api_key)
    if headers:
        sent = replace(sent, headers={**headers, **sent.headers})
    url = ep.base_url.rstrip("/") + sent.path
    send_headers = sent.headers
    if ep.aws_credentials is not None and ep.region:  # signed after the extra headers: they are signed too
        send_headers = sign(sent, url, ep.aws_credentials, ep.region, datetime.now(UTC))
    t_send = time.perf_counter_ns()
    first_ns: int | None = None
    parts: list[str] = []
    calls: list[ToolCall] = []
    finish: str | None = None
    usage: Usage | None = None
    status: int | None = None
    cache: str | None = None
    try:
        async with asyncio.timeout(timeout_s):
            async with await post(session, url, sent.body, send_headers) as resp:
                status = resp.status
                cache = resp.headers.get(CACHE_HEADER)
                if resp.status != 200:
                    msg = wire.error(resp.status, await resp.read()).message
                    return _failed(outcomes.HTTP_ERROR, f"HTTP {resp.status}: {msg}", status, cache)
                if not req.stream:
                    raw = await resp.read()
                    end_ns = time.perf_counter_ns()
                    return _whole_reply(raw, wire, status, cache, (end_ns - t_send) / 1e6)
                decoder = wire.decoder()
                done = False
                async for data in resp.content.iter_any():
                    now = time.perf_counter_ns()
                    fed = decoder.feed(data)
                    if fed.error is not None:
                        text = "".join(parts)
                        kind = outcomes.INVALID_ANSWER if fed.error.kind == INVALID else outcomes.HTTP_ERROR
                        return _failed(kind, fed.error.message, status, cache, text, usage=_estimate(req, text))
                    for content in fed.content:
                        if first_ns is None:
                            first_ns = now
                        if content.channel == "answer":
                            parts.append(content.text)
                    calls += fed.tool_calls
                    finish = fed.finish_reason or finish
                    usage = fed.usage or usage
                    done = done or fed.done
                last = decoder.feed(b"", end_of_stream=True)
                done, calls = done or last.done, calls + list(last.tool_calls)
                end_ns = time.perf_counter_ns()
    except TimeoutError:
        text = "".join(parts)
        return _failed(outcomes.TIMEOUT, "timeout", status, cache, text, finish, _estimate(req, text))
    except (aiohttp.ClientError, OSError) as exc:
        text = "".join(parts)
        return _failed(outcomes.STREAM_CUT if status is not None else outcomes.CONNECTION_ERROR,
                       f"connection error: {type(exc).__name__}", status, cache, text, finish,
                       _estimate(req, text) if text else None)
    text = "".join(parts)
    if not done:
        return _failed(outcomes.STREAM_CUT, f"stream cut (ended without {wire.end_marker})", status, cache, text,
                       finish, _estimate(req, text))
    ttft = (first_ns - t_send) / 1e6 if first_ns is not None else None
    return Reply(True, text, finish, usage or _estimate(req, text), usage is None, status, None, cache, ttft,
                 (end_ns - t_send) / 1e6, outcomes.OK, tuple(calls))


LateScorer = Callable[[Case, str], dict[str, Score]]


def score_output(suite: Suite, case: Case, reply: Reply) -> dict[str, Score]:
    out = Output(reply.text, reply.finish_reason, reply.usage.completion_tokens)
    return {c.name: score(c, case, out) for c in suite.criteria
            if c.type not in LATE_TYPES and suite.applies_to(c, case)}


class OutputsFile:
    """outputs.jsonl, appended and flushed one line per finished call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("ab")

    def write(self, obj: dict[str, Any]) -> None:
        self._fh.write(orjson.dumps(obj) + b"\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


async def run_call(session: aiohttp.ClientSession, ep: Endpoint, suite: Suite, case: Case, repeat: int,
                   session_no: int, late: LateScorer | None, traces: OutputsFile | None = None) -> CallRecord:
    if suite.agent is not None:  # a case of an agent suite is a task: a trial of the agent loop
        from loadbench.eval.agent import run_trial  # agent imports this module

        return await run_trial(session, ep, suite, suite.agent.tasks[case.id], repeat, session_no, traces)
    request = case_request(case, ep.model, suite, stream=True)
    cost = cost_nc = 0.0
    reply: Reply | None = None
    attempts = 0
    for attempts in range(1, suite.retries + 2):
        reply = await chat(session, ep, request, suite.timeout_s)
        if ep.price is not None:
            paid, full = call_cost(reply.usage, ep.price, reply.cache)
            cost, cost_nc = cost + paid, cost_nc + full
        if not reply.retryable:
            break
        await asyncio.sleep(min(2.0, 0.1 * 2**attempts))
    assert reply is not None
    scores = score_output(suite, case, reply) if reply.ok else {}
    if reply.ok and late is not None:
        scores.update(await asyncio.to_thread(late, case, reply.text))
    return CallRecord(
        target=ep.name, case_id=case.id, repeat=repeat, session=session_no, ok=reply.ok, text=reply.text,
        finish_reason=reply.finish_reason, usage=reply.usage, attempts=attempts, error=reply.error,
        status=reply.status, cache=reply.cache, ttft_ms=reply.ttft_ms, e2e_ms=reply.e2e_ms, cost=cost,
        cost_nocache=cost_nc, usage_estimated=reply.usage_estimated, scores=scores)


def shuffled(cases: Sequence[Case], seed: int, target: str, repeat: int) -> list[Case]:
    order = list(cases)
    random.Random(f"{seed}:{target}:{repeat}").shuffle(order)
    return order


async def _run_repeat(ep: Endpoint, suite: Suite, cases: Sequence[Case], repeat: int, session_no: int,
                      out: OutputsFile, late: LateScorer | None, traces: OutputsFile | None) -> list[CallRecord]:
    records: list[CallRecord] = []
    connector = aiohttp.TCPConnector(limit=suite.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:  # a fresh session per repeat
        gate = asyncio.Semaphore(suite.concurrency)

        async def one(case: Case) -> None:
            async with gate:
                record = await run_call(session, ep, suite, case, repeat, session_no, late, traces)
            out.write(record.to_json())
            records.append(record)

        await asyncio.gather(*(one(c) for c in shuffled(cases, suite.seed, ep.name, repeat)))
    return records


async def _run_target(ep: Endpoint, suite: Suite, cases: Sequence[Case], repeats: Sequence[int], session_no: int,
                      out: OutputsFile, late: LateScorer | None, traces: OutputsFile | None) -> list[CallRecord]:
    records: list[CallRecord] = []
    for repeat in repeats:
        records += await _run_repeat(ep, suite, cases, repeat, session_no, out, late, traces)
    return records


async def run_calls(endpoints: Sequence[Endpoint], suite: Suite, cases: Sequence[Case],
                    repeats: dict[str, list[int]], session_no: int, out: OutputsFile,
                    late: LateScorer | None = None, traces: OutputsFile | None = None) -> list[CallRecord]:
    """Every call (or, in an agent suite, every trial: its steps go to ``traces``)."""
    results = await asyncio.gather(*(_run_target(ep, suite, cases, repeats[ep.name], session_no, out, late, traces)
                                     for ep in endpoints))
    return [r for rs in results for r in rs]


async def run_probes(endpoints: Sequence[Endpoint], suite: Suite,
                     windows: dict[str, int | None]) -> list[tuple[str, ProbeResult]]:
    """The built-in failure-mode probes, each target in a fresh session of its own."""

    async def target(ep: Endpoint) -> list[tuple[str, ProbeResult]]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=suite.concurrency)) as session:
            async def one(p: Probe) -> tuple[str, ProbeResult]:
                r = await chat(session, ep, probe_request(p, ep.model), suite.timeout_s)
                return ep.name, judge_probe(p, r.ok, r.status, r.error, r.text, r.finish_reason, r.usage)

            return list(await asyncio.gather(*(one(p) for p in probes(windows.get(ep.name)))))

    results = await asyncio.gather(*(target(ep) for ep in endpoints))
    return [r for rs in results for r in rs]
