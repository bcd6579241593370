"""The agent loop, loadbench's own, run unchanged on every candidate (layer 4: it calls through
``runner.chat``, so the endpoint's dialect writes the tools and tool turns and decodes the calls).

One trial: a fresh copy of the task's state; send the conversation with the tool schemas; run
every call the model makes (several in one turn: in order), append each result as a tool turn;
repeat until the model answers without a tool call or a limit is hit (``max_steps``, the token
budget: prompt + completion tokens of all steps, checked after each step, the time budget: wall time
of the trial, which also bounds each step's wait). A
malformed call (an unknown tool, arguments that are not JSON or fail the schema) and a tool that
raises are answered with an error the model sees, as agent frameworks do, and counted.

Every step is one line of traces.jsonl (``loadbench.eval.trace/1``): the trial's ``trace_id``,
the messages the step added to the request, the response (text, tool calls, finish reason), the
tool results, TTFT and E2E of the step, usage and cost. Each request carries the trace id in the
``x-loadbench-trace`` header (a gateway's log can be joined with the trace; the mock seeds its
agent with it).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from loadbench.eval.agentscore import ANSWERED, matched_calls, score_trial
from loadbench.eval.records import TRACE_HEADER, AgentTrial, CallRecord
from loadbench.eval.runner import Endpoint, OutputsFile, Reply, chat
from loadbench.eval.suite import AGENT_CRITERION, Suite
from loadbench.eval.tasks import Action, State, Task, call_tool, check_arguments
from loadbench.pricing import Usage, call_cost
from loadbench.protocol.dialect import LLMRequest, Message, ToolCall

TRACE_SCHEMA = "loadbench.eval.trace/1"
# why a loop stopped, besides ANSWERED
MAX_STEPS, TOKEN_BUDGET, TIME_BUDGET, CALL_FAILED = "max_steps", "token_budget", "time_budget", "call_failed"
INVALID, TOOL_ERROR = "invalid", "tool_error"
TRACE_LINE_CHARS = 160  # a failed trial's short trace in the report: each line cut to this


def trace_id(seed: int, target: str, task: str, repeat: int) -> str:
    """Stable per (seed, target, task, repeat): a re-run of the same trial has the same id."""
    return hashlib.sha256(f"{seed}:{target}:{task}:{repeat}".encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Executed:
    """One call the model made and what it got back."""

    call: ToolCall
    action: Action | None  # None: malformed (never ran)
    result: str  # the tool turn's content (a JSON result or {"error": ...})
    error: str  # "" | INVALID | TOOL_ERROR


def _error(message: str) -> str:
    return orjson.dumps({"error": message}).decode()


def execute(task: Task, state: State, call: ToolCall) -> Executed:
    """Run one call on ``state``: validated against the tool's schema first."""
    spec = task.toolbox.spec(call.name)
    if spec is None:
        known = ", ".join(t.name for t in task.toolbox.specs)
        return Executed(call, None, _error(f"unknown tool {call.name!r}; the tools are: {known}"), INVALID)
    try:
        args = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        return Executed(call, None, _error("the arguments are not valid JSON"), INVALID)
    problems = check_arguments(spec, args)
    if problems:
        return Executed(call, None, _error("invalid arguments: " + "; ".join(problems)), INVALID)
    action = Action(call.name, args)
    try:
        result = call_tool(task.toolbox, state, action)
    except Exception as exc:  # the tool's own error: the model is told, as a real tool would tell it
        return Executed(call, action, _error(f"{type(exc).__name__}: {exc}"), TOOL_ERROR)
    return Executed(call, action, orjson.dumps(result).decode(), "")


def _cut(text: str) -> str:
    return text if len(text) <= TRACE_LINE_CHARS else text[:TRACE_LINE_CHARS - 3] + "..."


def _message_json(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


class _Trial:
    """The running state of one trial (the loop below is its only user)."""

    def __init__(self, ep: Endpoint, suite: Suite, task: Task, repeat: int) -> None:
        self.ep, self.suite, self.task, self.repeat = ep, suite, task, repeat
        self.trace_id = trace_id(suite.seed, ep.name, task.id, repeat)
        self.state = task.fresh_state()
        system = task.system or suite.system
        self.messages: list[Message] = ([Message("system", system)] if system else []) + [Message("user", task.goal)]
        self.sent = 0  # messages already sent in an earlier step
        self.made: list[Action] = []
        self.calls = self.invalid = self.tool_errors = self.tokens = self.attempts = 0
        self.cost = self.cost_nc = 0.0
        self.usage = Usage()
        self.ttfts: list[float] = []
        self.lines: list[str] = []
        self.cache: str | None = None
        self.estimated = False  # some step's usage was estimated (the server sent none)

    def request(self) -> LLMRequest:
        return LLMRequest(self.ep.model, tuple(self.messages), max_tokens=self.suite.max_tokens,
                          temperature=self.suite.temperature, stream=True, tools=self.task.toolbox.specs)

    def book(self, reply: Reply) -> None:
        """Count one attempt's spend and tokens (a retried attempt's spend counts too)."""
        self.attempts += 1
        if self.ep.price is not None:
            paid, full = call_cost(reply.usage, self.ep.price, reply.cache)
            self.cost, self.cost_nc = self.cost + paid, self.cost_nc + full
        self.usage = self.usage + reply.usage
        self.estimated = self.estimated or reply.usage_estimated
        self.tokens = self.usage.prompt_tokens + self.usage.completion_tokens
        self.cache = reply.cache or self.cache

    def unsent(self) -> list[Message]:
        """The messages the next request adds to the previous one (marked sent)."""
        added, self.sent = self.messages[self.sent:], len(self.messages)
        return added

    def trace(self, step: int, added: Sequence[Message], reply: Reply, done: Sequence[Executed],
              out: OutputsFile | None) -> None:
        if reply.ttft_ms is not None:
            self.ttfts.append(reply.ttft_ms)
        calls = [f"{e.call.name}({e.call.arguments}) -> {e.result}" for e in done]
        if not reply.ok:
            self.lines.append(_cut(f"{step}. call failed: {reply.error}"))
        elif calls:
            self.lines += [_cut(f"{step}. {c}") for c in calls]
        else:
            self.lines.append(_cut(f"{step}. answer: {reply.text}"))
        if out is None:
            return
        out.write({"schema": TRACE_SCHEMA, "trace_id": self.trace_id, "target": self.ep.name, "task": self.task.id,
                   "repeat": self.repeat, "step": step,
                   "request": {"model": self.ep.model, "messages_added": [_message_json(m) for m in added],
                               "messages": self.sent,
                               "tools": [t.name for t in self.task.toolbox.specs]},
                   "response": {"ok": reply.ok, "text": reply.text, "finish_reason": reply.finish_reason,
                                "error": reply.error, "status": reply.status,
                                "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments}
                                               for c in reply.tool_calls]},
                   "results": [{"id": e.call.id, "name": e.call.name, "content": e.result, "error": e.error}
                               for e in done],
                   "ttft_ms": reply.ttft_ms, "e2e_ms": reply.e2e_ms, "usage": reply.usage.to_json(),
                   "cost": self.cost})


async def _step(session: aiohttp.ClientSession, t: _Trial, timeout_s: float) -> Reply:
    """One step's call, retried as the runner retries a call (every attempt's spend counts)."""
    reply: Reply | None = None
    for attempt in range(1, t.suite.retries + 2):
        reply = await chat(session, t.ep, t.request(), timeout_s, {TRACE_HEADER: t.trace_id})
        t.book(reply)
        if not reply.retryable:
            break
        await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
    assert reply is not None
    return reply


async def run_trial(session: aiohttp.ClientSession, ep: Endpoint, suite: Suite, task: Task, repeat: int,
                    session_no: int, traces: OutputsFile | None) -> CallRecord:
    """One trial of ``task`` on ``ep``, scored; its steps appended to ``traces``."""
    assert suite.agent is not None
    spec = suite.agent
    t = _Trial(ep, suite, task, repeat)
    t0 = time.perf_counter()
    stop, text, finish, error, status = MAX_STEPS, "", None, None, None
    steps = 0  # requests made (a time budget spent before a step makes none)
    for step in range(1, spec.max_steps + 1):
        left_s = spec.time_budget_s - (time.perf_counter() - t0)
        if left_s <= 0:
            stop = TIME_BUDGET
            break
        added = t.unsent()
        reply = await _step(session, t, min(suite.timeout_s, left_s))
        steps = step
        status = reply.status
        if not reply.ok:
            over = time.perf_counter() - t0 >= spec.time_budget_s
            t.trace(step, added, reply, (), traces)
            stop, error = (TIME_BUDGET, None) if over else (CALL_FAILED, reply.error)
            break
        done: list[Executed] = []
        if reply.tool_calls:
            t.messages.append(Message("assistant", reply.text, reply.tool_calls))
            for call in reply.tool_calls:
                e = execute(task, t.state, call)
                done.append(e)
                t.messages.append(Message("tool", e.result, tool_call_id=call.id))
            t.calls += len(done)
            t.invalid += sum(1 for e in done if e.error == INVALID)
            t.tool_errors += sum(1 for e in done if e.error == TOOL_ERROR)
            t.made += [e.action for e in done if e.action is not None]
        t.trace(step, added, reply, done, traces)
        if t.tokens > spec.max_tokens:  # over budget, even in an answer: the trial used more than it may
            stop = TOKEN_BUDGET
            break
        if not reply.tool_calls:
            stop, text, finish = ANSWERED, reply.text, reply.finish_reason
            break
    wall_ms = (time.perf_counter() - t0) * 1000
    success = score_trial(task, stop, t.state, text, t.made)
    trial = AgentTrial(trace_id=t.trace_id, stop=stop, steps=steps, tool_calls=t.calls, invalid_calls=t.invalid,
                       tool_errors=t.tool_errors, gold_calls=len(task.gold),
                       matched_calls=matched_calls(t.made, task.gold), ttft_steps_ms=tuple(t.ttfts), tokens=t.tokens,
                       trace=tuple(t.lines))
    ok = stop != CALL_FAILED
    return CallRecord(
        target=ep.name, case_id=task.id, repeat=repeat, session=session_no, ok=ok, text=text, finish_reason=finish,
        usage=t.usage, attempts=t.attempts, error=error, status=status, cache=t.cache,
        ttft_ms=t.ttfts[0] if t.ttfts else None, e2e_ms=wall_ms, cost=t.cost, cost_nocache=t.cost_nc,
        usage_estimated=t.estimated,
        scores={AGENT_CRITERION: success} if ok else {}, agent=trial)
