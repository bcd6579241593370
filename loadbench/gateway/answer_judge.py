"""Sampled judging of experiment answers: the eval judge grades a fraction of both arms' answers.

After the client has its answer, a sampled one (``experiment.quality.judge.fraction``) is graded in a
task of its own with the eval judge's single-grading prompt and parsing (``loadbench.eval.judging``):
every target name, model name and ``strip_names`` entry is replaced by ``[model]`` in the question and
the answer before the judge sees them (blind). The score (mean rubric grade in [0, 1]) is stored as a
feedback row with ``outcome = 'judge'`` under the request's id and tenant: the quality signal
``loadbench ab`` and the ``min_quality`` guardrail read, like inline checks and user feedback. One
answer is graded alone (an A/B request reaches one arm only), so there is no second order to swap.

Never on the request path: at most ``max_concurrency`` judge calls per worker are in flight, one more
sample is dropped and counted; the grade is written in the default executor. Judge spend (the judge's
usage at ``input_per_mtok`` / ``output_per_mtok``) is stored in the shared state (``sharedstate.py``;
with SQLite, the ``judge_spend`` table of the request log), which every worker of the gateway shares:
the budget is the gateway's, not a worker's. Each worker
reads the day's total (since 00:00 UTC, all workers) when it starts, when a reload adds or changes the
judge, and after each grade it stores, so neither a restart nor a reload resets it. Once the total
reaches ``budget_usd_per_day`` no more samples are judged that day; calls already in flight finish, so
the overshoot is at most ``workers x max_concurrency`` calls.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Mapping

import aiohttp
import orjson

from loadbench.eval.judging import blind, parse_grades, single_prompt
from loadbench.gateway.abconfig import AnswerJudgeSpec, ExperimentSpec
from loadbench.gateway.config import GatewaySpec
from loadbench.gateway.context import RequestContext
from loadbench.gateway.experiments import Experiments, changed, specs_of
from loadbench.gateway.ingress import captured_text
from loadbench.gateway.sharedstate import Rating, SharedState, StateUnavailable, rate_quietly
from loadbench.pricing import Price, Usage, model_cost
from loadbench.protocol.keepalive import post
from loadbench.protocol.openai import OPENAI, answer_text, question_text, usage_from
from loadbench.units import utc_day, utc_day_start_ms


def judge_cost(usage: Usage, spec: AnswerJudgeSpec) -> float:
    return model_cost(usage, Price.of("judge", spec.input_per_mtok, spec.output_per_mtok))


class AnswerJudges:
    """The judge of every experiment that has one, for one worker."""

    def __init__(self, experiments: Experiments, shared: SharedState, rng: random.Random) -> None:
        self.experiments = experiments  # read live: a reload's experiments are judged from then on
        self.shared = shared
        self.rng = rng
        self.in_flight: dict[str, int] = defaultdict(int)
        self.counts: dict[tuple[str, str], int] = defaultdict(int)  # (experiment, result) -> count
        self.spent_usd: dict[str, float] = defaultdict(float)  # since 00:00 UTC of ``day``
        self.day = utc_day(time.time())
        self.tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        budgeted = self._budgeted(experiments.specs)
        if budgeted:  # at start-up, before the loop serves: one small query
            self.spent_usd.update(self._spend_of(budgeted, self.day))

    @staticmethod
    def _budgeted(specs: Mapping[str, ExperimentSpec]) -> list[str]:
        return [name for name, s in specs.items() if s.judge is not None and s.judge.budget_usd_per_day is not None]

    def _spend_of(self, names: list[str], day: int) -> dict[str, float]:
        """Each experiment's spend on ``day``, by every worker, from the shared state."""
        try:
            return {name: self.shared.judge_spend_usd(name, utc_day_start_ms(day)) for name in names}
        except StateUnavailable:
            return {}  # nothing readable yet: nothing spent

    def on_reload(self, old: GatewaySpec, new: GatewaySpec) -> None:
        """A listener of ``events.config_reloaded``: a budgeted judge added or changed by a reload starts
        from the day's spend in the shared state, read in the default executor (a judge removed and added
        back the same day keeps its spend)."""
        specs = specs_of(new.routes)
        moved = changed(specs_of(old.routes), specs)
        names = [name for name in self._budgeted(specs) if name in moved]
        if names:
            task = asyncio.get_running_loop().create_task(self._reload_spend(names, self.day))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _reload_spend(self, names: list[str], day: int) -> None:
        totals = await asyncio.to_thread(self._spend_of, names, day)  # {} when unreadable: the first
        # grade stored reads the total back
        if day == self.day:
            for name, total in totals.items():
                self.spent_usd[name] = max(self.spent_usd[name], total)

    def judge_of(self, experiment: str) -> AnswerJudgeSpec | None:
        spec = self.experiments.specs.get(experiment)
        return spec.judge if spec is not None else None

    def on_finished(self, ctx: RequestContext, status: int) -> None:
        """A listener of ``events.exchange_finished``: an experiment's answer may be sampled."""
        if ctx.experiment:
            self.maybe(ctx, status, self.rng)

    def maybe(self, ctx: RequestContext, status: int, rng: random.Random) -> None:
        """Sample this finished exchange and start its grading (on the event loop; O(1) when not)."""
        spec = self.judge_of(ctx.experiment) if ctx.experiment else None
        if spec is None or ctx.role != "primary" or status != 200 or ctx.outcome or not ctx.captured:
            return
        if rng.random() >= spec.fraction:
            return
        name = ctx.experiment
        today = utc_day(time.time())
        if today != self.day:
            self.day, self.spent_usd = today, defaultdict(float)
        if spec.budget_usd_per_day is not None and self.spent_usd[name] >= spec.budget_usd_per_day:
            self.counts[(name, "over_budget")] += 1
            return
        if self.in_flight[name] >= spec.max_concurrency:
            self.counts[(name, "dropped_full")] += 1
            return
        self.in_flight[name] += 1
        answer = captured_text(ctx) or ""
        tenant = ctx.client_key_digest.hex() if ctx.client_key_digest else None
        request_ts_ms = round(time.time() * 1000 - (time.perf_counter_ns() - ctx.arrival_ns) / 1e6)
        task = asyncio.get_running_loop().create_task(
            self._grade(name, spec, ctx.request_id, tenant, question_text(ctx.body), answer, (ctx.arm, request_ts_ms)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _grade(self, name: str, spec: AnswerJudgeSpec, request_id: str, tenant: str | None, question: str,
                     answer: str, arm_at: tuple[str, int]) -> None:
        """Grade one answer; ``arm_at`` (the request's arm and Unix ms) places the grade in ``min_quality``'s
        window where the shared state keeps it apart from the log."""
        try:
            prompt = single_prompt(spec.rubric, "", blind(answer, spec.strip_names), blind(question, spec.strip_names))
            reply, usage = await self._ask(spec, prompt)
            cost = judge_cost(usage, spec)
            self.spent_usd[name] += cost  # until the shared total below comes back
            grades = parse_grades(reply, spec.rubric) if reply is not None else None
            if grades is None or grades.error:
                self.counts[(name, "unreadable")] += 1
                score = None
            else:
                self.counts[(name, "judged")] += 1
                score = sum(grades.scores.values()) / len(grades.scores)
            day = self.day
            total = await asyncio.to_thread(self.shared.add_judge_grade, round(time.time() * 1000), name, request_id,
                                            tenant, score, cost, utc_day_start_ms(day))
            arm, request_ts_ms = arm_at
            if score is not None and arm:
                rating = Rating(name, arm, request_ts_ms, request_id, score)
                await asyncio.to_thread(rate_quietly, self.shared, [rating])
            if day == self.day:  # the count of a day that is over must not carry into the next
                self.spent_usd[name] = max(self.spent_usd[name], total)
        except (aiohttp.ClientError, TimeoutError, StateUnavailable):
            self.counts[(name, "error")] += 1
        finally:
            self.in_flight[name] -= 1

    async def _ask(self, spec: AnswerJudgeSpec, prompt: str) -> tuple[str | None, Usage]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = OPENAI.headers(spec.api_key, stream=False)
        body = {"model": spec.model, "stream": False, "temperature": 0,
                "messages": [{"role": "user", "content": prompt}]}
        async with asyncio.timeout(spec.timeout_s):
            async with await post(self._session, OPENAI.url(spec.url, "chat"), orjson.dumps(body), headers) as resp:
                raw = await resp.read()
        if resp.status != 200:
            return None, Usage()
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None, Usage()
        usage = usage_from(obj.get("usage") if isinstance(obj, dict) else None)
        return answer_text(raw), usage

    def render(self, worker: str) -> list[str]:
        lines = ["# HELP loadbench_gateway_judge_total Sampled experiment answers by result "
                 "(judged, unreadable, error, dropped_full, over_budget)",
                 "# TYPE loadbench_gateway_judge_total counter"]
        for (name, result), n in sorted(self.counts.items()):
            lines.append(f'loadbench_gateway_judge_total{{experiment="{name}",result="{result}",'
                         f'worker="{worker}"}} {n}')
        lines += ["# HELP loadbench_gateway_judge_spend_today_usd Judge spend since 00:00 UTC, all workers, "
                  "as this worker last read it",
                  "# TYPE loadbench_gateway_judge_spend_today_usd gauge"]
        for name in sorted(name for name, s in self.experiments.specs.items() if s.judge is not None):
            lines.append(f'loadbench_gateway_judge_spend_today_usd{{experiment="{name}",worker="{worker}"}} '
                         f"{self.spent_usd[name]:.6f}")
        return lines

    async def close(self) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5.0)
        if self._session is not None:
            await self._session.close()
