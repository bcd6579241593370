"""The agent loop against a real server on 127.0.0.1 that plays a scripted model through the OpenAI
dialect's server half: parallel calls in one turn, malformed calls returned as errors and counted,
every step traced, and each limit (steps, tokens, time) ending the trial with a score of 0."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from loadbench.eval.agent import run_trial
from loadbench.eval.records import TRACE_HEADER, CallRecord
from loadbench.eval.runner import Endpoint, OutputsFile
from loadbench.eval.suite import load_suite
from loadbench.protocol.dialect import Answer, LLMRequest, ToolCall
from loadbench.protocol.openai import OPENAI
from loadbench.protocol.usage import Usage
from tests.eval.agent_fixtures import agent_suite, write_tasks

Script = Callable[[LLMRequest, int], Answer]  # (request, step) -> the answer


def _calls(*calls: tuple[str, str]) -> Answer:
    return Answer(finish_reason="tool_calls", tool_calls=tuple(ToolCall(f"c{i}", n, a) for i, (n, a) in
                                                               enumerate(calls)))


async def _serve(script: Script, seen: list[tuple[LLMRequest, str]], delay_s: float) -> web.AppRunner:
    async def chat(request: web.Request) -> web.StreamResponse:
        req = OPENAI.parse_request(await request.read(), request.path)
        seen.append((req, request.headers.get(TRACE_HEADER, "")))
        step = sum(1 for m in req.messages if m.role == "assistant")
        answer = script(req, step)
        await asyncio.sleep(delay_s)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        enc = OPENAI.encoder(req.model, "r1")
        body = enc.head() + (enc.content(answer.text) if answer.text else b"")
        body += b"".join(enc.tool_call(c) for c in answer.tool_calls)
        await resp.write(body + enc.tail(answer.finish_reason or "stop", Usage(100, 10)))
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def _trial(tmp_path: Path, script: Script, delay_s: float = 0.0, **limits: float) -> tuple[
        CallRecord, list[tuple[LLMRequest, str]], list[dict]]:
    suite = load_suite(agent_suite(tmp_path, write_tasks(tmp_path, 2), [{"name": "m", "model": "m",
                                                                         "url": "http://127.0.0.1:1/v1"}]))
    assert suite.agent is not None
    suite = replace(suite, agent=replace(suite.agent, **limits))
    seen: list[tuple[LLMRequest, str]] = []

    async def main() -> CallRecord:
        runner = await _serve(script, seen, delay_s)
        port = runner.addresses[0][1]
        out = OutputsFile(tmp_path / "traces.jsonl")
        try:
            async with aiohttp.ClientSession() as session:
                ep = Endpoint("m", f"http://127.0.0.1:{port}/v1", "m")
                return await run_trial(session, ep, suite, suite.agent.tasks["t000"], 0, 0, out)
        finally:
            out.close()
            await runner.cleanup()

    record = asyncio.run(main())
    traces = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    return record, seen, traces


def test_parallel_calls_in_one_turn_run_in_order_and_each_result_goes_back(tmp_path: Path) -> None:
    def script(req: LLMRequest, step: int) -> Answer:
        if step == 0:
            return _calls(("lookup", '{"order_id": "O000"}'), ("refund", '{"order_id": "O000", "amount": 10.0}'))
        return Answer(text="Done: refund R-O000.", finish_reason="stop")

    record, seen, traces = _trial(tmp_path, script)
    assert record.ok and record.scores["task_success"].passed and record.text == "Done: refund R-O000."
    a = record.agent
    assert a is not None and (a.steps, a.tool_calls, a.invalid_calls, a.matched_calls, a.stop) == (2, 2, 0, 2, "answer")
    second = seen[1][0].messages
    assert [m.role for m in second[-3:]] == ["assistant", "tool", "tool"]
    assert [m.tool_call_id for m in second[-2:]] == ["c0", "c1"] and "R-O000" in second[-1].content
    assert seen[0][0].tools and {h for _, h in seen} == {a.trace_id}  # every step carries the one trace id
    assert [t["step"] for t in traces] == [1, 2] and {t["trace_id"] for t in traces} == {a.trace_id}
    assert [r["name"] for r in traces[0]["results"]] == ["lookup", "refund"] and traces[1]["response"]["text"]
    assert record.usage == Usage(200, 20) and a.tokens == 220 and len(a.ttft_steps_ms) == 2


def test_malformed_calls_are_recorded_returned_to_the_model_and_counted(tmp_path: Path) -> None:
    def script(req: LLMRequest, step: int) -> Answer:
        if step == 0:
            return _calls(("lookup", '{"order_id": '), ("no_such_tool", "{}"), ("refund", '{"order_id": "O000"}'))
        return Answer(text="sorry", finish_reason="stop")

    record, seen, traces = _trial(tmp_path, script)
    a = record.agent
    assert a is not None and (a.tool_calls, a.invalid_calls, a.matched_calls) == (3, 3, 0)
    errors = [orjson.loads(m.content)["error"] for m in seen[1][0].messages if m.role == "tool"]
    assert errors[0] == "the arguments are not valid JSON" and "unknown tool 'no_such_tool'" in errors[1]
    assert "amount: required" in errors[2]
    assert [r["error"] for r in traces[0]["results"]] == ["invalid"] * 3
    assert not record.scores["task_success"].passed and record.scores["task_success"].parts["state"] == 0.0


def test_running_out_of_steps_scores_zero(tmp_path: Path) -> None:
    record, seen, _ = _trial(tmp_path, lambda req, step: _calls(("lookup", '{"order_id": "O000"}')), max_steps=3)
    assert record.agent is not None and (record.agent.stop, record.agent.steps, len(seen)) == ("max_steps", 3, 3)
    assert record.scores["task_success"].value == 0.0 and record.ok


def test_the_token_budget_ends_the_trial_and_scores_zero(tmp_path: Path) -> None:
    record, seen, _ = _trial(tmp_path, lambda req, step: _calls(("lookup", '{"order_id": "O000"}')), max_tokens=250)
    assert record.agent is not None and (record.agent.stop, len(seen)) == ("token_budget", 3)  # 110 tokens a step
    assert record.scores["task_success"].value == 0.0


def test_an_answer_past_the_token_budget_scores_zero(tmp_path: Path) -> None:
    record, _, _ = _trial(tmp_path, lambda req, step: Answer(text="R-O000", finish_reason="stop"), max_tokens=100)
    assert record.agent is not None and record.agent.stop == "token_budget" and record.agent.tokens == 110
    assert record.scores["task_success"].value == 0.0


def test_the_time_budget_ends_the_trial_and_scores_zero(tmp_path: Path) -> None:
    def script(req: LLMRequest, step: int) -> Answer:
        return _calls(("lookup", '{"order_id": "O000"}')) if step < 5 else Answer(text="R-O000")

    record, seen, _ = _trial(tmp_path, script, delay_s=0.2, time_budget_s=0.5)
    assert record.agent is not None and record.agent.stop == "time_budget" and len(seen) <= 3
    assert record.scores["task_success"].value == 0.0 and record.e2e_ms is not None and record.e2e_ms < 2000
