"""The mock as an agent of known competence: ``loadbench mock --agent TASKS.json --accuracy P``.

A tool-calling request (one that offers tools) is recognised by its first user message, the task's
goal. Each trial draws once, from a hash of (seed, task id, trace id), whether it is competent
(probability ``accuracy``): a competent trial calls the gold actions in order, one per step, then
answers with the task's required facts. Otherwise it makes one mistake, drawn from
``agent_mistakes``, at a drawn step of the gold path (the steps before it follow the gold path):

    wrong_tool      the gold action's arguments sent to another tool of the task
    wrong_argument  the gold action with its first argument changed
    stop_early      an answer without the facts instead of the action
    malformed       the gold tool with arguments that are not JSON (the loop returns an error)
and after the mistake it gives up (an answer without the facts). So with independent trace ids
(one per trial, sent as the ``x-loadbench-trace`` header) a task with required facts passes with
probability exactly P per trial, and k repeats all pass with P^k. The step is the number of
assistant turns already in the conversation, so the mock keeps no state between requests.

Answers are written through the request's own dialect's server half (its encoder and ``answer_body``),
in whichever protocol the mock speaks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from loadbench.eval.records import TRACE_HEADER
from loadbench.mock.draw import unit
from loadbench.mock.request import GenerationRequest
from loadbench.mock.settings import MockSettings
from loadbench.mock.stats import MockStats
from loadbench.protocol.dialect import STOP, TOOL_CALLS, Answer, Dialect, LLMRequest, ToolCall
from loadbench.protocol.usage import Usage

MISTAKES = ("wrong_tool", "wrong_argument", "stop_early", "malformed")
GIVE_UP = "I am sorry, I could not complete this request."
UNKNOWN_TASK = "I do not know this task."


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    gold: tuple[tuple[str, dict[str, Any]], ...]  # (tool, arguments)
    facts: tuple[str, ...]
    tools: tuple[tuple[str, frozenset[str]], ...]  # (name, required argument names)


def load_plans(path: Path) -> dict[str, Plan]:
    """The tasks by normalised goal (what ``loadbench eval`` writes: ``tasks.mock_plans``)."""
    out: dict[str, Plan] = {}
    for t in orjson.loads(path.read_bytes()):
        tools = tuple((str(x["name"]), frozenset(x.get("parameters", {}).get("required", ()))) for x in t["tools"])
        out[" ".join(str(t["goal"]).split())] = Plan(
            str(t["id"]), tuple((str(a["tool"]), dict(a["arguments"])) for a in t["gold"]),
            tuple(str(f) for f in t["facts"]), tools)
    return out


def _changed(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "-X"
    return None


class AgentPlayer:
    def __init__(self, settings: MockSettings) -> None:
        self.s = settings
        self.plans = load_plans(Path(settings.agent))
        self.mistakes = tuple(k for k in settings.agent_mistakes.split(",") if k)

    def answer(self, req: LLMRequest, trace: str) -> Answer:
        """This step's answer: a tool call or the final text."""
        users = [m.content for m in req.messages if m.role == "user"]
        plan = self.plans.get(" ".join(users[0].split())) if users else None
        if plan is None:
            return Answer(text=UNKNOWN_TASK, finish_reason=STOP)
        step = sum(1 for m in req.messages if m.role == "assistant")
        key = (self.s.seed, plan.id, trace)
        if unit(*key, "competent") < self.s.accuracy:
            return self._gold(plan, step) if step < len(plan.gold) else self._done(plan)
        kind = self.mistakes[int(unit(*key, "mistake") * len(self.mistakes))]
        at = int(unit(*key, "step") * max(1, len(plan.gold)))
        if step < at:
            return self._gold(plan, step)
        if step > at or kind == "stop_early":
            return Answer(text=GIVE_UP, finish_reason=STOP)
        tool, args = plan.gold[at] if plan.gold else (plan.tools[0][0], {})
        return self._call(step, *self._mistake(kind, plan, tool, args))

    def _gold(self, plan: Plan, step: int) -> Answer:
        tool, args = plan.gold[step]
        return self._call(step, tool, orjson.dumps(args).decode())

    @staticmethod
    def _done(plan: Plan) -> Answer:
        return Answer(text="Done. " + "; ".join(plan.facts) + ".", finish_reason=STOP)

    @staticmethod
    def _call(step: int, tool: str, arguments: str) -> Answer:
        return Answer(text="", finish_reason=TOOL_CALLS, tool_calls=(ToolCall(f"call_{step}_0", tool, arguments),))

    def _mistake(self, kind: str, plan: Plan, tool: str, args: dict[str, Any]) -> tuple[str, str]:
        if kind == "malformed":
            return tool, orjson.dumps(args).decode()[:-1] or "{"
        others = [(name, req) for name, req in plan.tools if name != tool]
        if kind == "wrong_tool" and others:
            fitting = [name for name, req in others if req <= set(args)]
            return (fitting or [n for n, _ in others])[0], orjson.dumps(args).decode()
        if not args:  # no argument to change: the call goes to a tool that does not exist
            return tool + "_other", "{}"
        first = sorted(args)[0]
        return tool, orjson.dumps({**args, first: _changed(args[first])}).decode()

    async def respond(self, request: web.Request, wire: Dialect, req: LLMRequest, g: GenerationRequest,
                      response_id: str, ttft_s: float, itl_s: float, stats: MockStats) -> web.StreamResponse | None:
        """The answer to a tool-calling request in ``wire``'s protocol; None for any other request
        (answered as before)."""
        t0 = time.monotonic()
        if not req.tools:
            return None
        stats.count(200)
        answer = self.answer(req, request.headers.get(TRACE_HEADER, ""))
        out_tokens = len(answer.text.split()) + sum(len(c.arguments.split()) + 1 for c in answer.tool_calls)
        usage = Usage(g.prompt_tokens, out_tokens)
        answer = Answer(text=answer.text, finish_reason=answer.finish_reason, usage=usage, model=g.model, choices=1,
                        tool_calls=answer.tool_calls)
        await asyncio.sleep(max(0.0, t0 + ttft_s - time.monotonic()))
        if not g.stream:
            return web.Response(body=wire.answer_body(answer, response_id), content_type=wire.content_type)
        resp = web.StreamResponse(headers={"Content-Type": wire.stream_content_type, "Cache-Control": "no-cache"})
        await resp.prepare(request)
        enc = wire.encoder(g.model, response_id)
        try:
            await resp.write(enc.head())
            if answer.text:
                await resp.write(enc.content(answer.text))
            for call in answer.tool_calls:
                await asyncio.sleep(itl_s)
                await resp.write(enc.tool_call(call))
            reported = usage if g.include_usage and not self.s.no_usage else None
            await resp.write(enc.tail(answer.finish_reason or STOP, reported))
            await resp.write_eof()
        except ConnectionResetError:
            stats.disconnects += 1
        return resp
