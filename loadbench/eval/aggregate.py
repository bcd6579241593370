"""Scored calls -> the Scorecard. Pure: the suite, the records, the date and the seed come in.

Per output (one call): a failed call scores 0 on every criterion and is never acceptable. Judge
and code_tests scores are merged from the judgement lines (several judges: the mean score;
passed when the mean >= the threshold). quality = Σ w·score / Σ w over the criteria that apply;
acceptable = the call succeeded and it passes every criterion of the suite's ``accept`` list that
applies to its case. Per case, repeats are averaged first; every interval then resamples cases.
Formulas of every figure: docs/eval.md.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from loadbench.eval.agentstats import agent_card
from loadbench.eval.classify import classification_report
from loadbench.eval.consistency import CaseConsistency, case_consistency
from loadbench.eval.criteria import Criterion, Score
from loadbench.eval.dataset import Case
from loadbench.eval.decision import PairedCases, decide, icer, overall
from loadbench.eval.records import CallRecord, Judgement
from loadbench.eval.scorecard import (
    ConsistencyCard,
    CostCard,
    CriterionCard,
    Decision,
    Inconsistent,
    JudgeCard,
    JudgeStats,
    LatencyCard,
    PairwiseCard,
    Percentiles,
    ProbeResult,
    QualityCard,
    RegressionResult,
    Scorecard,
    TargetCard,
)
from loadbench.eval.stats import (
    FloatArray,
    Interval,
    bootstrap_mean,
    bootstrap_ratio,
    pass_at_k,
    quantile,
    wilson,
)
from loadbench.eval.suite import Suite
from loadbench.pricing import stale_days

LEAST_CONSISTENT = 5
AGENT_MIN_K = 4  # pass^k of agent tasks is asked for with k >= 4


@dataclass(frozen=True, slots=True)
class Scored:
    """One call with every score merged and its verdicts."""

    record: CallRecord
    scores: dict[str, Score]
    quality: float
    accepted: bool


def merge_judgements(records: Sequence[CallRecord], judgements: Sequence[Judgement],
                     criteria: Sequence[Criterion]) -> list[CallRecord]:
    by_call: dict[tuple[str, str, int], dict[str, list[Score]]] = defaultdict(lambda: defaultdict(list))
    for j in judgements:
        if j.kind == "score" and j.score is not None:
            by_call[(j.target, j.case_id, j.repeat)][j.criterion].append(j.score)
    thresholds = {c.name: c.threshold for c in criteria}
    out = []
    for r in records:
        late = by_call.get(r.key)
        if not late:
            out.append(r)
            continue
        scores = dict(r.scores)
        for name, got in late.items():
            value = sum(s.value for s in got) / len(got)
            parts: dict[str, float] = defaultdict(float)
            for s in got:
                for k, v in s.parts.items():
                    parts[k] += v / len(got)
            scores[name] = Score(value, value >= thresholds.get(name, 1.0), got[0].detail, dict(parts))
        out.append(replace(r, scores=scores))
    return out


def score_call(r: CallRecord, case: Case, suite: Suite) -> Scored:
    applied = [c for c in suite.criteria if suite.applies_to(c, case)]
    if not r.ok:
        zero = {c.name: Score(0.0, False, "call failed") for c in applied}
        return Scored(r, zero, 0.0, False)
    scores = {c.name: r.scores[c.name] for c in applied if c.name in r.scores}
    weight = sum(c.weight for c in applied if c.name in scores)
    quality = sum(c.weight * scores[c.name].value for c in applied if c.name in scores) / weight if weight else 0.0
    accept = [c for c in applied if c.name in suite.accept]
    accepted = all(c.name in scores and scores[c.name].passed for c in accept)
    return Scored(r, scores, quality, accepted)


def latest(records: Sequence[CallRecord]) -> list[CallRecord]:
    """One record per (target, case, repeat): the last written (a resumed call replaces its first try)."""
    seen: dict[tuple[str, str, int], CallRecord] = {}
    for r in records:
        seen[r.key] = r
    return list(seen.values())


def _percentiles(values: Sequence[float]) -> Percentiles:
    return Percentiles(len(values), quantile(values, 0.5), quantile(values, 0.95), quantile(values, 0.99))


def _mean(xs: Sequence[float]) -> float:
    finite = [x for x in xs if not math.isnan(x)]
    return sum(finite) / len(finite) if finite else math.nan


@dataclass(frozen=True, slots=True)
class _TargetData:
    calls: list[Scored]
    by_case: dict[str, list[Scored]]  # case id -> its repeats, in repeat order
    case_ids: list[str]


def _target_data(scored: Sequence[Scored], cases: Mapping[str, Case]) -> _TargetData:
    by_case: dict[str, list[Scored]] = defaultdict(list)
    for s in sorted(scored, key=lambda s: s.record.repeat):
        by_case[s.record.case_id].append(s)
    ids = [cid for cid in cases if cid in by_case]
    return _TargetData(list(scored), by_case, ids)


def _per_case(d: _TargetData, fn: Callable[[list[Scored]], float]) -> list[float]:
    return [float(fn(d.by_case[cid])) for cid in d.case_ids]


def _quality(d: _TargetData, suite: Suite, cases: Mapping[str, Case], seed: int) -> QualityCard:
    weights = [cases[cid].weight for cid in d.case_ids]
    acceptable = bootstrap_mean(_per_case(d, lambda xs: _mean([1.0 if s.accepted else 0.0 for s in xs])), seed,
                                weights)
    score = bootstrap_mean(_per_case(d, lambda xs: _mean([s.quality for s in xs])), seed, weights)
    cards = []
    for c in suite.criteria:
        ids = [cid for cid in d.case_ids if any(c.name in s.scores for s in d.by_case[cid])]
        vals = [_mean([s.scores[c.name].value for s in d.by_case[cid] if c.name in s.scores]) for cid in ids]
        passes = [_mean([1.0 if s.scores[c.name].passed else 0.0 for s in d.by_case[cid] if c.name in s.scores])
                  for cid in ids]
        parts: dict[str, list[float]] = defaultdict(list)
        n = 0
        for cid in ids:
            for s in d.by_case[cid]:
                if c.name in s.scores:
                    n += 1
                    for k, v in s.scores[c.name].parts.items():
                        parts[k].append(v)
        at_k = None
        if c.type == "code_tests" and ids:
            counts = [(len(d.by_case[cid]), sum(1 for s in d.by_case[cid]
                                                 if c.name in s.scores and s.scores[c.name].passed)) for cid in ids]
            at_k = _mean([pass_at_k(n_, c_, min(c.k, n_)) for n_, c_ in counts])
        cards.append(CriterionCard(c.name, c.type, c.weight, c.threshold, n, bootstrap_mean(vals, seed),
                                   bootstrap_mean(passes, seed), {k: _mean(v) for k, v in sorted(parts.items())},
                                   at_k))
    by_kind = {}
    for kind in ("representative", "edge", "regression", "probe"):
        ids = [cid for cid in d.case_ids if cases[cid].kind == kind]
        if ids:
            by_kind[kind] = bootstrap_mean([_mean([1.0 if s.accepted else 0.0 for s in d.by_case[cid]])
                                            for cid in ids], seed)
    report = None
    label_criteria = [c.name for c in suite.criteria if c.type == "classification"]
    if label_criteria:
        name = label_criteria[0]
        pairs = [(str(cases[s.record.case_id].label), s.scores[name].detail if s.record.ok else "(failed)")
                 for s in d.calls if name in s.scores and cases[s.record.case_id].label is not None]
        report = classification_report((t, p) for t, p in pairs)
    return QualityCard(acceptable, score, tuple(cards), by_kind, report)


def _consistency(d: _TargetData, k: int, seed: int) -> tuple[ConsistencyCard, list[CaseConsistency]]:
    per = [case_consistency(cid, [s.record.text for s in d.by_case[cid]], [s.accepted for s in d.by_case[cid]],
                            [s.quality for s in d.by_case[cid]], k) for cid in d.case_ids]
    pair = [c.pair_agreement for c in per if not math.isnan(c.pair_agreement)]
    card = ConsistencyCard(
        k=min([k, *[c.n for c in per]]) if per else k,
        pass_hat_k=bootstrap_mean([c.pass_hat_k for c in per if not math.isnan(c.pass_hat_k)], seed),
        pass_at_k=_mean([c.pass_at_k for c in per]), pass_rate=_mean([c.passes / c.n for c in per if c.n]),
        flip_rate=_mean([1.0 if c.flip else 0.0 for c in per]), spread=_mean([c.spread for c in per]),
        json_valid=_mean([c.json_valid for c in per]), key_agreement=_mean([c.key_agreement for c in per]),
        field_agreement=_mean([c.field_agreement for c in per]), distinct=_mean([float(c.distinct) for c in per]),
        text_similarity=_mean([c.text_similarity for c in per]),
        pair_agreement=bootstrap_mean(pair, seed) if pair else Interval(math.nan, math.nan, math.nan))
    return card, per


def _cost(d: _TargetData, suite: Suite, target_price: str, today: dt.date, seed: int) -> CostCard | None:
    if suite.pricing is None:
        return None
    price = suite.pricing.price(target_price, "the scorecard")
    calls = d.calls
    spend = sum(s.record.cost for s in calls)
    spend_nc = sum(s.record.cost_nocache for s in calls)
    ok = [s for s in calls if s.record.ok]
    hits = sum(1 for s in calls if (s.record.cache or "").startswith("hit"))
    per_case_spend = _per_case(d, lambda xs: sum(s.record.cost for s in xs))
    per_case_spend_nc = _per_case(d, lambda xs: sum(s.record.cost_nocache for s in xs))
    per_case_acc = _per_case(d, lambda xs: sum(1.0 for s in xs if s.accepted))
    return CostCard(
        currency=suite.pricing.currency, calls=len(calls), spend=spend, spend_nocache=spend_nc,
        per_request=spend / len(calls) if calls else math.nan, per_completed=spend / len(ok) if ok else math.inf,
        per_acceptable=bootstrap_ratio(per_case_spend, per_case_acc, seed),
        per_acceptable_nocache=bootstrap_ratio(per_case_spend_nc, per_case_acc, seed),
        cache_hit_rate=hits / len(calls) if calls else 0.0,
        mean_input_tokens=_mean([float(s.record.usage.prompt_tokens) for s in ok]),
        mean_output_tokens=_mean([float(s.record.usage.completion_tokens) for s in ok]),
        cost_per_quality_point=None, dominated=False, price_source=price.source, price_as_of=price.as_of.isoformat(),
        stale_days=stale_days(price, today))


def _case_array(d: _TargetData, ids: Sequence[str], fn: Callable[[list[Scored]], float]) -> FloatArray:
    return np.asarray([float(fn(d.by_case[cid])) for cid in ids], dtype=np.float64)


def _paired(c: _TargetData, i: _TargetData, k: int) -> PairedCases:
    ids = [cid for cid in c.case_ids if cid in i.by_case]

    def arr(d: _TargetData, fn: Callable[[list[Scored]], float]) -> FloatArray:
        return _case_array(d, ids, fn)

    def acc_share(xs: list[Scored]) -> float:
        return _mean([1.0 if s.accepted else 0.0 for s in xs])

    def hat_k(xs: list[Scored]) -> float:
        from loadbench.eval.stats import pass_hat_k

        return pass_hat_k(len(xs), sum(s.accepted for s in xs), min(k, len(xs)))

    def lat(d: _TargetData, attr: str) -> list[float]:
        return [float(getattr(s.record, attr)) for cid in ids for s in d.by_case[cid]
                if s.record.ok and getattr(s.record, attr) is not None]

    return PairedCases(
        q_c=arr(c, acc_share), q_i=arr(i, acc_share),
        spend_c=arr(c, lambda xs: sum(s.record.cost for s in xs)),
        spend_i=arr(i, lambda xs: sum(s.record.cost for s in xs)),
        acc_c=arr(c, lambda xs: sum(1.0 for s in xs if s.accepted)),
        acc_i=arr(i, lambda xs: sum(1.0 for s in xs if s.accepted)),
        k_c=arr(c, hat_k), k_i=arr(i, hat_k), e2e_c=lat(c, "e2e_ms"), e2e_i=lat(i, "e2e_ms"),
        ttft_c=lat(c, "ttft_ms"), ttft_i=lat(i, "ttft_ms"))


def _pairwise(target: str, judgements: Sequence[Judgement]) -> tuple[PairwiseCard, ...]:
    groups: dict[tuple[str, str], list[Judgement]] = defaultdict(list)
    for j in judgements:
        if j.kind == "pair" and j.target == target:
            groups[(j.judge, j.other)].append(j)
    cards = []
    for (judge, other), js in sorted(groups.items()):
        wins = sum(1 for j in js if j.winner == target)
        ties = sum(1 for j in js if j.winner == "tie")
        losses = len(js) - wins - ties
        # a tie is half a win: the Wilson interval is taken on 2n half-trials
        half = wilson(2 * wins + ties, 2 * len(js))
        cards.append(PairwiseCard(judge, other, len(js), wins, ties, losses, half))
    return tuple(cards)


def _fleiss_kappa(table: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa for items rated by the same number of raters into categories (counts)."""
    if not table:
        return None
    n = sum(table[0])
    if n < 2:
        return None
    big_n = len(table)
    p_j = [sum(row[j] for row in table) / (big_n * n) for j in range(len(table[0]))]
    p_i = [(sum(x * x for x in row) - n) / (n * (n - 1)) for row in table]
    p_bar, p_e = sum(p_i) / big_n, sum(p * p for p in p_j)
    return 1.0 if p_e == 1 else (p_bar - p_e) / (1 - p_e)


def _judge_card(suite: Suite, judgements: Sequence[Judgement]) -> JudgeCard | None:
    if suite.judge is None:
        return None
    stats = []
    for j in suite.judge.judges:
        mine = [x for x in judgements if x.judge == j.name]
        pairs = [x for x in mine if x.kind == "pair"]
        consistency = (sum(1 for x in pairs if x.first == x.second) / len(pairs)) if pairs else None
        calls = sum(2 if x.kind == "pair" else 1 for x in mine)  # a pair is judged in both orders
        stats.append(JudgeStats(j.name, calls, sum(1 for x in mine if x.cached),
                                sum(x.cost for x in mine), consistency))
    verdicts: dict[tuple[str, str, int, str], dict[str, bool]] = defaultdict(dict)
    for x in judgements:
        if x.kind == "score" and x.score is not None:
            verdicts[(x.target, x.case_id, x.repeat, x.criterion)][x.judge] = x.score.passed
    names = [j.name for j in suite.judge.judges]
    full = [v for v in verdicts.values() if len(v) == len(names)]
    agreement = kappa = None
    if len(names) > 1 and full:
        pair_eq = [1.0 if v[a] == v[b] else 0.0 for v in full for a, b in itertools.combinations(names, 2)]
        agreement = sum(pair_eq) / len(pair_eq)
        kappa = _fleiss_kappa([[sum(1 for n in names if v[n]), sum(1 for n in names if not v[n])] for v in full])
    return JudgeCard(suite.judge.blind, tuple(stats), agreement, kappa, sum(x.cost for x in judgements))


def build_scorecard(suite: Suite, cases: Sequence[Case], records: Sequence[CallRecord],
                    judgements: Sequence[Judgement], *, created_utc: str, today: dt.date,
                    latency_from: Mapping[str, LatencyCard] | None = None,
                    probes: Mapping[str, Sequence[ProbeResult]] | None = None) -> Scorecard:
    seed = suite.seed
    by_id = {c.id: c for c in cases}
    merged = merge_judgements(latest([r for r in records if r.case_id in by_id]), judgements, suite.criteria)
    data: dict[str, _TargetData] = {}
    for t in suite.targets:
        scored = [score_call(r, by_id[r.case_id], suite) for r in merged if r.target == t.name]
        data[t.name] = _target_data(scored, by_id)
    incumbent = suite.decide.incumbent if suite.decide else suite.targets[0].name
    cards: list[TargetCard] = []
    all_inconsistent: list[tuple[float, Inconsistent]] = []
    warnings: list[str] = []
    for t in suite.targets:
        d = data[t.name]
        quality = _quality(d, suite, by_id, seed)
        cost = _cost(d, suite, t.price, today, seed)
        consistency, per_case = _consistency(d, suite.repeats, seed)
        ok = [s.record for s in d.calls if s.record.ok]
        latency = (latency_from or {}).get(t.name) or LatencyCard(
            "eval calls", _percentiles([r.ttft_ms for r in ok if r.ttft_ms is not None]),
            _percentiles([r.e2e_ms for r in ok if r.e2e_ms is not None]))
        regressions = tuple(RegressionResult(cid, sum(1 for s in d.by_case[cid] if s.accepted), len(d.by_case[cid]))
                            for cid in d.case_ids if by_id[cid].kind == "regression")
        for cc in per_case:
            if cc.n > 1 and (cc.flip or cc.distinct > 1):
                outs = tuple(s.record.text for s in d.by_case[cc.case_id])
                badness = (1.0 if cc.flip else 0.0) + (1.0 - (cc.pair_agreement if not math.isnan(cc.pair_agreement)
                                                                else 1.0))
                all_inconsistent.append((badness, Inconsistent(t.name, cc.case_id, cc.passes / cc.n, outs)))
        if cost is not None and cost.stale_days is not None:
            warnings.append(f"prices of {t.price!r} are {cost.stale_days} days old (as_of {cost.price_as_of}); "
                            "check them against the source")
        if any(s.record.usage_estimated for s in d.calls):
            warnings.append(f"{t.name}: some token counts were estimated (the server sent no usage)")
        errors = sum(1 for s in d.calls if not s.record.ok)
        agent = None
        if suite.agent is not None:
            trials = [(s.record, s.accepted) for cid in d.case_ids for s in d.by_case[cid]]
            agent = agent_card(trials, by_id, suite.repeats, seed)
        cards.append(TargetCard(t.name, t.model, len(d.calls), errors, quality, cost, latency, consistency,
                                regressions, tuple((probes or {}).get(t.name, ())), _pairwise(t.name, judgements),
                                agent))
    if suite.agent is not None and suite.repeats < AGENT_MIN_K:
        warnings.append(f"pass^k of agent tasks is reported for k = {suite.repeats}; use repeats: {AGENT_MIN_K} or "
                        "more to see how reliably a task succeeds")
    cards = _with_cost_relations(cards, data, incumbent, seed)
    decision = None
    if suite.decide is not None:
        dd = suite.decide
        inc = data[dd.incumbent]
        decisions = tuple(decide(t.name, dd.incumbent, _paired(data[t.name], inc, suite.repeats),
                                 quality_ratio_min=dd.quality_ratio_min, cost_ratio_max=dd.cost_ratio_max,
                                 p95_e2e_ratio_max=dd.p95_e2e_ratio_max, p95_ttft_ratio_max=dd.p95_ttft_ratio_max,
                                 consistency_ratio_min=dd.consistency_ratio_min, min_cases=dd.min_cases, seed=seed)
                          for t in suite.targets if t.name != dd.incumbent)
        decision = Decision(overall(decisions), dd.incumbent, decisions)
    all_inconsistent.sort(key=lambda x: -x[0])
    sessions = len({r.session for r in merged})
    return Scorecard(
        name=suite.name, created_utc=created_utc, suite=suite.path, dataset_hash=suite.dataset_hash,
        cases=len(by_id), repeats=max((r.repeat for r in merged), default=-1) + 1, sessions=sessions,
        targets=tuple(cards), judge=_judge_card(suite, judgements), decision=decision,
        least_consistent=tuple(x for _, x in all_inconsistent[:LEAST_CONSISTENT]), warnings=tuple(warnings))


def _with_cost_relations(cards: list[TargetCard], data: Mapping[str, _TargetData], incumbent: str,
                         seed: int) -> list[TargetCard]:
    """Fill the cost-to-quality ratio against the incumbent and the dominated flag."""
    inc_card = next((c for c in cards if c.name == incumbent), None)
    if inc_card is None or inc_card.cost is None:
        return cards
    inc = data[incumbent]
    out = []
    for card in cards:
        if card.name == incumbent or card.cost is None:
            out.append(card)
            continue
        d = data[card.name]
        ids = [cid for cid in d.case_ids if cid in inc.by_case]

        def mean_cost(xs: list[Scored]) -> float:
            return _mean([s.record.cost for s in xs])

        def acc(xs: list[Scored]) -> float:
            return _mean([1.0 if s.accepted else 0.0 for s in xs])

        ratio = icer(_case_array(d, ids, mean_cost), _case_array(inc, ids, mean_cost), _case_array(d, ids, acc),
                     _case_array(inc, ids, acc), seed) if ids else None
        dominated = (card.cost.per_acceptable.value > inc_card.cost.per_acceptable.value
                     and card.quality.acceptable.value < inc_card.quality.acceptable.value)
        out.append(replace(card, cost=replace(card.cost, cost_per_quality_point=ratio, dominated=dominated)))
    return out
