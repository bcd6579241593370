"""``loadbench eval SUITE --from-log LOG --pairs``: score the shadow pairs of a request log with a
suite's rubric and its blind, order-swapped pairwise judge, on the same Scorecard as ``loadbench eval``.

A pair is a primary row and its shadow row under one ``pair_id``. Each logged answer becomes one
scored call of its target (the log's target name), matched to the suite's case by its last user
message (or prompt), whitespace-normalised; the k-th pair of a case is repeat k of both targets, so
the judge compares the two answers of the same request. Cost is the logged ``cost_usd``. Pairs
whose bodies were not logged, or whose request matches no case, are counted and reported as
unscorable. The primary target is the incumbent of the pairwise verdicts. The acceptable rate's
interval is Wilson's over the logged answers (as ``loadbench ab`` gives an arm's rates).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections import defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from loadbench.errors import ExitCode, InputError
from loadbench.eval.aggregate import build_scorecard, score_call
from loadbench.eval.dataset import Case
from loadbench.eval.interrupts import interruptible
from loadbench.eval.records import CallRecord, Judgement
from loadbench.eval.runner import Endpoint, Reply, score_output
from loadbench.eval.scorecard import TargetCard
from loadbench.eval.stats import wilson
from loadbench.eval.suite import EvalTarget, Suite, load_suite
from loadbench.eval.workflow import _api_key, _url, exit_code, write_scorecard
from loadbench.pricing import Price, Pricing, Usage
from loadbench.protocol.openai import answer_text, question_text, stream_text
from loadbench.results import run_dir as rd
from loadbench.results.request_log import LoggedAnswer, LoggedPair, RequestLog

LOG_COST_SOURCE = "request log cost_usd"


@dataclass(frozen=True, slots=True)
class PairRecords:
    primary: str
    shadow: str
    records: tuple[CallRecord, ...]
    pairs: int
    no_body: int  # pairs whose request or either answer was not logged
    no_case: int  # pairs whose request matches no case of the suite


def _text(a: LoggedAnswer) -> str:
    raw = (a.response_body or "").encode()
    whole = answer_text(raw)
    return whole if whole is not None else stream_text(raw)


def _record(suite: Suite, case: Case, a: LoggedAnswer, repeat: int) -> CallRecord:
    text = _text(a) if a.ok else ""
    usage = Usage(prompt_tokens=a.prompt_tokens, completion_tokens=a.output_tokens)
    reply = Reply(a.ok, text, "stop" if a.ok else None, usage, False, a.status, None if a.ok else "logged error",
                  None, a.ttft_ms, a.e2e_ms)
    return CallRecord(target=a.target, case_id=case.id, repeat=repeat, session=0, ok=a.ok, text=text,
                      finish_reason=reply.finish_reason, usage=usage, error=reply.error, status=a.status,
                      ttft_ms=a.ttft_ms, e2e_ms=a.e2e_ms, cost=a.cost_usd, cost_nocache=a.cost_usd,
                      scores=score_output(suite, case, reply) if a.ok else {})


def pair_records(suite: Suite, pairs: Sequence[LoggedPair]) -> PairRecords:
    """The scored calls of the pairs of one (primary, shadow) target couple (the most frequent one)."""
    couples: dict[tuple[str, str], int] = defaultdict(int)
    for p in pairs:
        couples[(p.primary.target, p.shadow.target)] += 1
    (primary, shadow), _ = max(couples.items(), key=lambda kv: (kv[1], kv[0]))
    by_text = {" ".join(c.user_text().split()): c for c in suite.cases}
    seen: dict[str, int] = defaultdict(int)
    records: list[CallRecord] = []
    no_body = no_case = n = 0
    for p in pairs:
        if (p.primary.target, p.shadow.target) != (primary, shadow):
            continue
        n += 1
        if p.primary.request_body is None or (p.primary.ok and p.primary.response_body is None) or (
                p.shadow.ok and p.shadow.response_body is None):
            no_body += 1
            continue
        try:
            body = orjson.loads(p.primary.request_body)
        except orjson.JSONDecodeError:
            body = None
        # the same rule as the mock's answer book, so a logged request finds the case it was made from
        case = by_text.get(" ".join(question_text(body).split())) if isinstance(body, dict) else None
        if case is None:
            no_case += 1
            continue
        repeat = seen[case.id]
        seen[case.id] += 1
        records += [_record(suite, case, p.primary, repeat), _record(suite, case, p.shadow, repeat)]
    return PairRecords(primary, shadow, tuple(records), n, no_body, no_case)


def pairs_suite(suite: Suite, got: PairRecords, today: dt.date) -> Suite:
    """The suite with the log's two targets (primary first: the incumbent) priced by the logged cost."""
    targets = tuple(EvalTarget(name, None, name, None, name, None, (), None) for name in (got.primary, got.shadow))
    price = {name: Price.of(name, 0.0, 0.0, LOG_COST_SOURCE, today) for name in (got.primary, got.shadow)}
    return replace(suite, targets=targets, decide=None, probes=False,
                   pricing=Pricing(LOG_COST_SOURCE, suite.pricing.currency if suite.pricing else "USD", price))


def run_pairs(suite_path: Path, log_path: str | Path, out_dir: Path, name: str | None) -> ExitCode:
    """Score the log's shadow pairs (Ctrl-C: exit 130); the scorecard's exit code."""
    with interruptible():
        return _run_pairs(suite_path, log_path, out_dir, name)


def _run_pairs(suite_path: Path, log_path: str | Path, out_dir: Path, name: str | None) -> ExitCode:
    original = load_suite(suite_path)
    with RequestLog.open(log_path) as log:
        pairs = log.answer_pairs()
    if not pairs:
        raise InputError(f"{log.name}: no shadow pairs in this request log (give a virtual model `shadow:` and "
                         "`request_log: {log_bodies: all}` in the gateway config, then send traffic)")
    now = dt.datetime.now(dt.UTC)
    got = pair_records(original, pairs)
    suite = pairs_suite(original, got, now.date())
    folder = rd.new_run_dir(out_dir, f"{name or suite.name}-pairs", now)
    (folder / "manifest.json").write_bytes(orjson.dumps({
        "schema": "loadbench.eval.manifest/1", "source": "request log pairs", "log": log.name,
        "suite": suite.path, "suite_name": suite.name, "created_utc": now.isoformat(timespec="seconds"),
        "targets": [{"name": got.primary, "role": "primary"}, {"name": got.shadow, "role": "shadow"}],
        "pairs": got.pairs, "unscorable_no_body": got.no_body, "unscorable_no_case": got.no_case,
    }, option=orjson.OPT_INDENT_2))
    (folder / "outputs.jsonl").write_bytes(b"".join(orjson.dumps(r.to_json()) + b"\n" for r in got.records))
    judgements: list[Judgement] = []
    if suite.judge is not None and got.records:
        judgements = _judge(suite, original.pricing, got.records, folder)
    scorecard = build_scorecard(suite, suite.cases, got.records, judgements,
                                created_utc=now.isoformat(timespec="seconds"), today=now.date())
    unscorable = []
    if got.no_body:
        unscorable.append(f"{got.no_body} of {got.pairs} pairs unscorable: bodies not logged "
                          "(request_log.log_bodies: all)")
    if got.no_case:
        unscorable.append(f"{got.no_case} of {got.pairs} pairs unscorable: the request matches no case of the suite")
    scorecard = replace(scorecard, targets=tuple(_wilson_acceptable(t, suite, got.records) for t in scorecard.targets),
                        warnings=(*unscorable, *scorecard.warnings))
    write_scorecard(folder, scorecard)
    from loadbench.eval.render import summary

    print(summary(scorecard), flush=True)
    print(f"{got.pairs} pairs ({got.primary} vs {got.shadow}), {got.no_body + got.no_case} unscorable; "
          f"scorecard: {folder / 'scorecard.md'}", file=sys.stderr)
    return exit_code(scorecard)


def _wilson_acceptable(card: TargetCard, suite: Suite, records: Sequence[CallRecord]) -> TargetCard:
    """The acceptable rate over logged answers with its Wilson interval, the statistic ``loadbench ab``
    reports for an arm (each logged answer is one Bernoulli trial; the scorecard's bootstrap resamples cases)."""
    by_id = {c.id: c for c in suite.cases}
    mine = [score_call(r, by_id[r.case_id], suite).accepted for r in records if r.target == card.name]
    if not mine:
        return card
    return replace(card, quality=replace(card.quality, acceptable=wilson(sum(mine), len(mine))))


def _judge(suite: Suite, pricing: Pricing | None, records: Sequence[CallRecord], folder: Path) -> list[Judgement]:
    from loadbench.eval.judge import JudgeCache, judge_all
    from loadbench.eval.runner import OutputsFile

    assert suite.judge is not None
    judges = suite.judge.judges
    keys = {j.name: _api_key(j) for j in judges}
    with ExitStack() as stack:
        eps = [Endpoint(j.name, _url(j, {}, folder, suite, stack), j.model, keys[j.name],
                        pricing.prices.get(j.price) if pricing else None) for j in judges]
        cache = JudgeCache(folder / "judge_cache.jsonl")
        out = OutputsFile(folder / "judgements.jsonl")
        try:
            return asyncio.run(judge_all(suite, suite.cases, records, eps, cache, out, set()))
        finally:
            out.close()
            cache.close()
