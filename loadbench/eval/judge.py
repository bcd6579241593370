"""The judge client (layer 4): blind rubric grading and two-order pairwise verdicts, cached.

Every judge call's prompt is built from blinded outputs (``judging.blind`` with every target
name, model name and ``strip_names``), so the judge never sees who answered. Replies are cached
in ``judge_cache.jsonl`` keyed by SHA-256(judge model + prompt): a re-run or an ``--append``
session pays only for prompts it has not judged before. Judge spend is booked on the judge,
never on the targets.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import aiohttp
import orjson

from loadbench.eval.criteria import Criterion, Score
from loadbench.eval.dataset import Case
from loadbench.eval.judging import blind, combine_orders, pair_prompt, parse_grades, parse_winner, single_prompt
from loadbench.eval.records import CallRecord, Judgement
from loadbench.eval.runner import Endpoint, OutputsFile, chat
from loadbench.eval.suite import Suite
from loadbench.pricing import call_cost
from loadbench.protocol.dialect import LLMRequest, Message

JudgedKey = tuple[str, str, str, str, int, str]  # kind, judge, target, case, repeat, criterion


def judged_key(j: Judgement) -> JudgedKey:
    return (j.kind, j.judge, j.target, j.case_id, j.repeat, j.criterion)


class JudgeCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, str] = {}
        if path.exists():
            for line in path.read_bytes().splitlines():
                if line.strip():
                    obj = orjson.loads(line)
                    self.entries[obj["key"]] = obj["reply"]
        self._out = OutputsFile(path)

    @staticmethod
    def key(model: str, prompt: str) -> str:
        return hashlib.sha256(f"{model}\n{prompt}".encode()).hexdigest()

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def put(self, key: str, reply: str) -> None:
        self.entries[key] = reply
        self._out.write({"key": key, "reply": reply})

    def close(self) -> None:
        self._out.close()


class Judge:
    def __init__(self, ep: Endpoint, cache: JudgeCache, session: aiohttp.ClientSession, timeout_s: float,
                 gate: asyncio.Semaphore) -> None:
        self.ep, self.cache, self.session, self.timeout_s, self.gate = ep, cache, session, timeout_s, gate

    async def ask(self, prompt: str) -> tuple[str, float, bool]:
        """(reply, cost, cached)."""
        key = JudgeCache.key(self.ep.model, prompt)
        hit = self.cache.get(key)
        if hit is not None:
            return hit, 0.0, True
        request = LLMRequest(self.ep.model, (Message("user", prompt),), temperature=0, stream=False)
        async with self.gate:
            reply = await chat(self.session, self.ep, request, self.timeout_s)
        cost = call_cost(reply.usage, self.ep.price, reply.cache)[0] if self.ep.price else 0.0
        if reply.ok:
            self.cache.put(key, reply.text)
        return (reply.text if reply.ok else ""), cost, False


def strip_list(suite: Suite) -> list[str]:
    names = [n for t in suite.targets for n in (t.name, t.model, *t.strip_names)]
    return names + list(suite.judge.strip_names if suite.judge else ())


async def _grade(judge: Judge, criterion: Criterion, case: Case, record: CallRecord, names: Sequence[str],
                 is_blind: bool) -> Judgement:
    answer = blind(record.text, names) if is_blind else record.text
    prompt = single_prompt(criterion.rubric, case.reference or "", answer, blind(case.user_text(), names))
    reply, cost, cached = await judge.ask(prompt)
    grades = parse_grades(reply, criterion.rubric)
    if grades.error:
        score = Score(0.0, False, grades.error)
    else:
        value = sum(grades.scores.values()) / len(grades.scores)
        score = Score(value, value >= criterion.threshold, "", grades.scores)
    return Judgement("score", judge.ep.name, record.target, record.case_id, record.repeat, criterion.name,
                     score, cost=cost, cached=cached)


async def _pair(judge: Judge, case: Case, cand: CallRecord, inc: CallRecord, names: Sequence[str],
                is_blind: bool) -> Judgement:
    a = blind(cand.text, names) if is_blind else cand.text
    b = blind(inc.text, names) if is_blind else inc.text
    question = blind(case.user_text(), names)
    (r1, c1, h1), (r2, c2, h2) = await asyncio.gather(judge.ask(pair_prompt(case.reference or "", a, b, question)),
                                                      judge.ask(pair_prompt(case.reference or "", b, a, question)))
    first, second, winner = combine_orders(cand.target, inc.target, parse_winner(r1), parse_winner(r2))
    return Judgement("pair", judge.ep.name, cand.target, case.id, cand.repeat, other=inc.target, first=first,
                     second=second, winner=winner, cost=c1 + c2, cached=h1 and h2)


async def judge_all(suite: Suite, cases: Iterable[Case], records: Sequence[CallRecord], judges: Sequence[Endpoint],
                    cache: JudgeCache, out: OutputsFile, done: set[JudgedKey]) -> list[Judgement]:
    """Grade every successful call needing a judge criterion, and (with ``pairwise``) every
    candidate/incumbent pair not yet in ``done``."""
    assert suite.judge is not None
    by_id = {c.id: c for c in cases}
    names = strip_list(suite)
    is_blind = suite.judge.blind
    criteria = [c for c in suite.criteria if c.type == "judge"]
    gate = asyncio.Semaphore(suite.concurrency)
    results: list[Judgement] = []
    async with aiohttp.ClientSession() as session:
        tasks = []
        for ep in judges:
            judge = Judge(ep, cache, session, suite.timeout_s, gate)
            for r in records:
                case = by_id.get(r.case_id)
                if case is None or not r.ok:
                    continue
                for c in criteria:
                    key = ("score", ep.name, r.target, r.case_id, r.repeat, c.name)
                    if suite.applies_to(c, case) and key not in done:
                        tasks.append(_grade(judge, c, case, r, names, is_blind))
            if suite.judge.pairwise:
                incumbent = suite.decide.incumbent if suite.decide else suite.targets[0].name
                inc = {(r.case_id, r.repeat): r for r in records if r.target == incumbent and r.ok}
                for r in records:
                    other = inc.get((r.case_id, r.repeat))
                    case = by_id.get(r.case_id)
                    if (r.target == incumbent or not r.ok or other is None or case is None or case.reference is None
                            or ("pair", ep.name, r.target, r.case_id, r.repeat, "") in done):
                        continue
                    tasks.append(_pair(judge, case, r, other, names, is_blind))

        async def one(task: object) -> None:
            assert asyncio.iscoroutine(task)
            j = await task
            out.write(j.to_json())
            results.append(j)

        await asyncio.gather(*(one(t) for t in tasks))
    return results
