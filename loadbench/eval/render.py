"""scorecard.md and a self-contained scorecard.html (plot embedded as PNG) from a Scorecard, both
exported from one ``report.document.Document`` (``scorecard_document``).

The cost vs quality plot marks the Pareto frontier: a target is on it when no other target has
both a lower cost per acceptable outcome and a higher acceptable rate. matplotlib is imported
only here, and only when a plot is drawn.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

from loadbench.eval.probes import over_refusal_rate
from loadbench.eval.scorecard import AgentCard, Scorecard, TargetCard
from loadbench.eval.stats import Interval
from loadbench.report.document import (
    Block,
    Bullet,
    Bullets,
    Document,
    Heading,
    Para,
    Png,
    Table,
    markdown_table,
    to_html,
    to_markdown,
)


def _pct(i: Interval) -> str:
    if not math.isfinite(i.value):
        return "n/a"
    if not (math.isfinite(i.low) and math.isfinite(i.high)):
        return f"{100 * i.value:.1f}%"
    return f"{100 * i.value:.1f}% [{100 * i.low:.1f}, {100 * i.high:.1f}]"


def _money(x: float, currency: str) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.6f} {currency}" if x < 0.01 else f"{x:.4f} {currency}"


def _money_i(i: Interval, currency: str) -> str:
    if not math.isfinite(i.value):
        return "n/a (no acceptable output)"
    if not (math.isfinite(i.low) and math.isfinite(i.high)):
        return _money(i.value, currency)
    return f"{_money(i.value, currency)} [{i.low:.6f}, {i.high:.6f}]"


def _ms(x: float) -> str:
    return f"{x:.0f}" if math.isfinite(x) else "n/a"


def pareto(points: Sequence[tuple[str, float, float]]) -> set[str]:
    """Names on the frontier of (name, cost, quality): lower cost and higher quality are better."""
    front = set()
    for name, c, q in points:
        if not (math.isfinite(c) and math.isfinite(q)):
            continue
        if not any((c2 <= c and q2 >= q and (c2 < c or q2 > q)) for n2, c2, q2 in points if n2 != name
                   and math.isfinite(c2) and math.isfinite(q2)):
            front.add(name)
    return front


def _row(t: TargetCard) -> list[str]:
    cost = t.cost
    cur = cost.currency if cost else ""
    return [
        t.name, _pct(t.quality.acceptable), f"{t.quality.score.value:.3f}",
        _money(cost.per_request, cur) if cost else "n/a",
        _money_i(cost.per_acceptable, cur) if cost else "n/a",
        _money_i(cost.per_acceptable_nocache, cur) if cost else "n/a",
        f"{100 * cost.cache_hit_rate:.0f}%" if cost else "n/a",
        f"{_ms(t.latency.ttft_ms.p50)} / {_ms(t.latency.ttft_ms.p95)} / {_ms(t.latency.ttft_ms.p99)}",
        f"{_ms(t.latency.e2e_ms.p50)} / {_ms(t.latency.e2e_ms.p95)} / {_ms(t.latency.e2e_ms.p99)}",
        _pct(t.consistency.pass_hat_k),
        f"{t.consistency.pair_agreement.value:.2f}" if math.isfinite(t.consistency.pair_agreement.value) else "n/a",
    ]


HEADER = ["target", "acceptable (95% CI)", "quality score", "cost/request", "cost/acceptable (95% CI)",
          "cost/acceptable without cache", "cache hits", "TTFT ms p50/p95/p99", "E2E ms p50/p95/p99",
          "pass^k (95% CI)", "agreement"]


def _incumbent_cost(sc: Scorecard, t: TargetCard) -> float:
    inc = sc.decision.incumbent if sc.decision else sc.targets[0].name
    card = sc.target(inc).cost
    return card.per_request if card else math.nan


def _target_blocks(sc: Scorecard, t: TargetCard) -> list[Block]:
    blocks: list[Block] = [Heading(f"{t.name} ({t.model})"), Para(f"{t.calls} calls, {t.errors} failed.")]
    crit = [[c.name, c.type, f"{c.weight:g}", f"{c.threshold:g}", f"{c.score.value:.3f}", _pct(c.pass_rate),
             ", ".join(f"{k}={v:.2f}" for k, v in c.parts.items())
             + (f"pass@k {c.pass_at_k:.3f}" if c.pass_at_k is not None else "")] for c in t.quality.criteria]
    blocks.append(Table(["criterion", "type", "weight", "threshold", "mean score", "pass rate (95% CI)",
                         "per field / rubric item"], crit))
    if t.quality.by_kind:
        blocks.append(Para("By case kind: " + "; ".join(f"{k} {_pct(v)}" for k, v in t.quality.by_kind.items())))
    cr = t.quality.classification
    if cr is not None:
        blocks += [Para(f"Classification: accuracy {cr.accuracy:.3f}, macro P/R/F1 {cr.macro_precision:.3f} / "
                        f"{cr.macro_recall:.3f} / {cr.macro_f1:.3f}"),
                   Table(["class", "P", "R", "F1", "support"],
                         [[c.label, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.support)]
                          for c in cr.classes])]
    if t.cost is not None:
        c = t.cost
        blocks.append(Para(f"Cost: spend {_money(c.spend, c.currency)} "
                           f"(without cache {_money(c.spend_nocache, c.currency)}),"
                           f" per completed task {_money(c.per_completed, c.currency)}, mean tokens in/out "
                           f"{c.mean_input_tokens:.0f}/{c.mean_output_tokens:.0f}; prices from {c.price_source} as of "
                           f"{c.price_as_of}."))
        if c.cost_per_quality_point is not None and math.isfinite(c.cost_per_quality_point.value):
            q = c.cost_per_quality_point
            note = " (DOMINATED: costs more, scores lower)" if c.dominated else (
                " (negative: cheaper and better, it dominates the incumbent)" if q.value < 0 and
                c.per_request < _incumbent_cost(sc, t) else "")
            blocks.append(Para(f"Cost-to-quality ratio vs the incumbent: {q.value:+.8f} {c.currency} per request "
                               f"per quality point [{q.low:+.8f}, {q.high:+.8f}]{note}"))
    k = t.consistency
    blocks.append(Para(f"Consistency: pass rate {k.pass_rate:.3f}, pass^{k.k} {_pct(k.pass_hat_k)}, pass@{k.k} "
                       f"{k.pass_at_k:.3f}, flips {k.flip_rate:.3f}, spread {k.spread:.3f}, "
                       f"distinct outputs {k.distinct:.2f},"
                       f" text similarity {k.text_similarity:.3f}, JSON valid {k.json_valid:.3f}, key agreement "
                       f"{k.key_agreement:.3f}, field agreement {k.field_agreement:.3f}"))
    if t.regressions:
        bad = [r.case_id for r in t.regressions if not r.passed]
        blocks.append(Para(f"Regression cases: {len(t.regressions) - len(bad)}/{len(t.regressions)} pass in every "
                           "repeat" + (f"; FAILED: {', '.join(bad)}" if bad else "")))
    if t.probes:
        blocks.append(Table(["probe", "outcome", "pass", "detail"],
                            [[p.probe, p.outcome, "yes" if p.passed else "NO", p.detail] for p in t.probes]))
    if t.agent is not None:
        blocks += _agent_blocks(t.agent, t.cost.currency if t.cost else "")
    for p in t.pairwise:
        blocks.append(Para(f"Pairwise vs {p.against} (judge {p.judge}, both orders): {p.wins} wins, {p.ties} ties, "
                           f"{p.losses} losses; win rate {_pct(p.win_rate)}"))
    return blocks


def _ratio(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "n/a"


def _agent_blocks(a: AgentCard, currency: str) -> list[Block]:
    """An agent suite's figures and the short traces of failed trials."""
    curve = ", ".join(f"pass^{j} {100 * v:.1f}%" for j, v in a.pass_hat.items())
    stops = ", ".join(f"{k} {v}" for k, v in sorted(a.stops.items()))
    checks = ", ".join(f"{k} {v}" for k, v in sorted(a.failed_checks.items())) or "none"
    blocks: list[Block] = [
        Para(f"Agent tasks: {a.tasks} tasks, {a.trials} trials. pass@1 {_pct(a.pass_at_1)}, pass^{a.k} "
             f"{_pct(a.pass_hat_k)} (95% bootstrap over tasks); {curve}."),
        Table(["cost per successful task", "successes", "spend", "steps / trial", "tokens / trial",
               "wall ms / trial", "TTFT ms per step p50/p95/p99"],
              [[_money(a.cost_per_success, currency), str(a.successes), _money(a.spend, currency),
                f"{a.mean_steps:.2f}", f"{a.mean_tokens:.0f}", _ms(a.mean_wall_ms),
                f"{_ms(a.ttft_step_ms.p50)} / {_ms(a.ttft_step_ms.p95)} / {_ms(a.ttft_step_ms.p99)}"]]),
        Para(f"Diagnostics (not the verdict): tool-call precision {_ratio(a.tool_precision)}, recall "
             f"{_ratio(a.tool_recall)} against the gold actions; {a.tool_calls} calls, {a.invalid_calls} invalid "
             f"(returned to the model as errors), {a.tool_errors} tool errors; loops stopped by: {stops}; "
             f"failed checks: {checks}."),
    ]
    if a.failed:
        blocks.append(Bullets([Bullet(f"failed: `{f.task}` repeat {f.repeat}, trace `{f.trace_id}`: {f.reason}",
                                      list(f.trace)) for f in a.failed]))
    return blocks


def scorecard_document(sc: Scorecard, png: bytes | None = None) -> Document:
    """The scorecard as a Document; ``png`` (the cost vs quality plot) follows the first paragraph."""
    doc = Document(f"Scorecard: {sc.name}", wide=True)
    doc.add(Para(f"Suite `{sc.suite}`, dataset sha256 `{sc.dataset_hash[:16]}`, {sc.cases} cases x {sc.repeats} "
                 f"repeats in {sc.sessions} session(s), {sc.created_utc}."))
    if png:
        doc.add(Png(png, "cost vs quality with the Pareto frontier"))
    lat = {t.latency.source for t in sc.targets}
    doc.add(Table(HEADER, [_row(t) for t in sc.targets]),
            Para(f"Latency from: {', '.join(sorted(lat))}. Consistency k = {sc.targets[0].consistency.k}."))
    for t in sc.targets:
        doc.add(*_target_blocks(sc, t))
    if sc.judge is not None:
        j = sc.judge
        items = [f"{s.name}: {s.calls} verdicts ({s.cached} from cache), position consistency "
                 + (f"{s.position_consistency:.2f}" if s.position_consistency is not None else "n/a")
                 for s in j.judges]
        if j.panel_agreement is not None:
            items.append(f"panel agreement {j.panel_agreement:.3f}, Fleiss kappa {j.panel_kappa:.3f}")
        doc.add(Heading("Judge"), Para(f"Blind: {'yes' if j.blind else 'NO'}; judge spend (apart from the targets): "
                                       f"{j.spend:.6f}."))
        if items:
            doc.add(Bullets(items))
    if sc.least_consistent:
        doc.add(Heading("Least consistent cases"), Bullets([
            f"{inc.target} `{inc.case_id}` (pass rate {inc.pass_rate:.2f}): "
            + " || ".join(o.replace("\n", " ")[:80] for o in inc.outputs) for inc in sc.least_consistent]))
    if sc.decision is not None:
        d = sc.decision
        doc.add(Heading(f"Decision: {d.verdict}"), Bullets([
            Bullet(f"{cd.candidate} vs {cd.incumbent}: **{cd.verdict}** ({cd.reason}; {cd.cases} cases)",
                   [f"{ch.criterion}: candidate/incumbent = {ch.ratio:.3f} (limit {ch.limit:g}); "
                    f"θ 95% CI [{ch.theta.low:.6g}, {ch.theta.high:.6g}] -> {ch.result}" for ch in cd.checks])
            for cd in d.candidates]))
    doc.add(*(Para(f"WARNING: {w}") for w in sc.warnings))
    return doc


def markdown(sc: Scorecard) -> str:
    return to_markdown(scorecard_document(sc), Path("."))


def html_page(sc: Scorecard, png: bytes | None) -> str:
    return to_html(scorecard_document(sc, png))


def summary(sc: Scorecard) -> str:
    """What the command prints: the four dimensions per target, failed regressions, the verdict."""
    lines = [f"# Scorecard: {sc.name} ({sc.cases} cases x {sc.repeats} repeats, dataset {sc.dataset_hash[:12]})", "",
             markdown_table(HEADER, [_row(t) for t in sc.targets])]
    for target, case_id in sc.regressions_failed:
        lines.append(f"regression case FAILED: {target} {case_id}")
    for t in sc.targets:
        if t.probes:
            failed = [f"{p.probe}: {p.outcome}" for p in t.probes if not p.passed]
            refusal = over_refusal_rate(list(t.probes))
            lines.append(f"probes: {t.name} {len(t.probes) - len(failed)}/{len(t.probes)} pass"
                         + (f" (failed {', '.join(failed)})" if failed else "")
                         + (f"; over-refusal {100 * refusal:.0f}%" if refusal is not None else ""))
    for t in sc.targets:
        if t.agent is not None:
            a = t.agent
            cur = t.cost.currency if t.cost else ""
            lines.append(f"agent: {t.name} pass@1 {_pct(a.pass_at_1)}, pass^{a.k} {_pct(a.pass_hat_k)}, cost per "
                         f"successful task {_money(a.cost_per_success, cur)}, {a.mean_steps:.1f} steps/trial, "
                         f"{a.invalid_calls} invalid calls")
    if sc.decision is not None:
        for cd in sc.decision.candidates:
            checks = ", ".join(f"{c.criterion} {c.ratio:.3f} (limit {c.limit:g}) {c.result}" for c in cd.checks)
            lines.append(f"decision: {cd.candidate} vs {cd.incumbent}: {cd.verdict}: {cd.reason} [{checks}]")
    lines += [f"WARNING: {w}" for w in sc.warnings]
    return "\n".join(lines) + "\n"


def cost_quality_png(sc: Scorecard) -> bytes | None:
    pts = [(t.name, t.cost.per_acceptable.value, t.quality.acceptable.value) for t in sc.targets if t.cost]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto(pts)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    shown: set[str] = set()
    for t in sc.targets:
        if t.cost is None:
            continue
        ci, qi = t.cost.per_acceptable, t.quality.acceptable
        c, q = ci.value, qi.value
        on = t.name in front
        label = "on the Pareto frontier" if on else "dominated"
        xerr = [[max(0.0, c - ci.low)], [max(0.0, ci.high - c)]] if math.isfinite(ci.low) else None
        yerr = [[100 * max(0.0, q - qi.low)], [100 * max(0.0, qi.high - q)]] if math.isfinite(qi.low) else None
        ax.errorbar([c], [100 * q], xerr=xerr, yerr=yerr, fmt="o", color="tab:green" if on else "tab:gray",
                    capsize=3, zorder=3, label=None if label in shown else label)
        shown.add(label)
        ax.annotate(t.name, (c, 100 * q), textcoords="offset points", xytext=(5, 5))
    fr = sorted((c, q) for n, c, q in pts if n in front)
    if len(fr) > 1:
        ax.plot([c for c, _ in fr], [100 * q for _, q in fr], color="tab:green", linestyle="--")
    ax.legend(title="95% intervals", fontsize=8)
    ax.set_xlabel(f"cost per acceptable outcome ({sc.targets[0].cost.currency if sc.targets[0].cost else ''})")
    ax.set_ylabel("acceptable outcomes (%)")
    ax.set_title("Cost vs quality")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
