"""``loadbench ab`` reports: Markdown and HTML (with the arms over time) exported from one
``report.document.Document``, and JSON. Pure (strings out)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from loadbench.ab.analysis import Analysis, ArmSummary, CriterionResult
from loadbench.report.document import Document, Heading, Para, Svg, Table, to_html, to_markdown

SCHEMA = "loadbench.ab/1"


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"


ARM_HEADERS = ("arm", "requests", "error rate (95% CI)", "quality (95% CI, n)", "cost / request",
               "cost / acceptable", "TTFT P50/P95/P99 ms", "E2E P50/P95/P99 ms")
CRITERIA_HEADERS = ("criterion", "rule", "estimate", "always-valid interval", "status", "more requests")


def _arm_rows(arms: Sequence[ArmSummary]) -> list[list[str]]:
    rows: list[list[str]] = []
    for a in arms:
        quality = "–" if a.quality is None or a.quality_ci is None else (
            f"{a.quality:.3f} ({a.quality_ci[0]:.3f}–{a.quality_ci[1]:.3f}, {a.quality_n})")
        rows.append([
            a.arm, str(a.requests),
            f"{a.error_rate:.2%} ({a.error_rate_ci[0]:.2%}–{a.error_rate_ci[1]:.2%})", quality,
            _num(a.cost_per_request, 6), _num(a.cost_per_acceptable, 6),
            "/".join(_num(x, 1) for x in (a.ttft.p50_ms, a.ttft.p95_ms, a.ttft.p99_ms)),
            "/".join(_num(x, 1) for x in (a.e2e.p50_ms, a.e2e.p95_ms, a.e2e.p99_ms))])
    return rows


def _criteria_rows(criteria: Sequence[CriterionResult]) -> list[list[str]]:
    rows: list[list[str]] = []
    for c in criteria:
        interval = "–" if c.low is None else f"[{_num(c.low, 4)}, {_num(c.high, 4)}]"
        more = "–" if c.status != "undecided" else ("unknown" if c.more_requests is None else str(c.more_requests))
        rows.append([c.name, c.rule, _num(c.estimate, 4), interval, c.status, more])
    return rows


def _headline(a: Analysis) -> str:
    more = f" (about {a.more_requests} more requests)" if a.verdict == "CONTINUE" and a.more_requests else ""
    return f"{a.verdict}: {a.reason}{more}"


def _svg(a: Analysis) -> str:
    """Requests (bars) and error rate (line) per time bucket, one colour per arm (a timeline is not empty)."""
    width, height, pad = 640, 200, 30
    starts = sorted({t for t, _, _, _ in a.timeline})
    most = max(n for _, _, n, _ in a.timeline)
    slot = (width - 2 * pad) / len(starts)
    colors = {"incumbent": "#4477aa", "candidate": "#ee6677"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="{pad}" y="14" font-size="12">requests (bars) and error rate (lines) over time</text>']
    for j, arm in enumerate(("incumbent", "candidate")):
        points = []
        for t, arm_, n, e in a.timeline:
            if arm_ != arm:
                continue
            i = starts.index(t)
            x = pad + i * slot + j * slot / 2
            bar = (height - 2 * pad) * n / most
            parts.append(f'<rect x="{x:.1f}" y="{height - pad - bar:.1f}" width="{slot / 2 - 1:.1f}" '
                         f'height="{bar:.1f}" fill="{colors[arm]}" opacity="0.4"/>')
            points.append(f"{x + slot / 4:.1f},{height - pad - (height - 2 * pad) * (e / n if n else 0):.1f}")
        if points:
            parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{colors[arm]}" '
                         f'stroke-width="2"/>')
        parts.append(f'<text x="{width - 150}" y="{14 + 14 * j}" font-size="12" fill="{colors[arm]}">{arm}</text>')
    parts.append("</svg>")
    return "".join(parts)


def ab_document(overall: Analysis, groups: Sequence[Analysis]) -> Document:
    doc = Document(f"Experiment {overall.experiment}")
    for a in (overall, *groups):
        if a.group:
            doc.add(Heading(a.group))
        doc.add(Para(f"**{_headline(a)}**"), Table(ARM_HEADERS, _arm_rows(a.arms)),
                Table(CRITERIA_HEADERS, _criteria_rows(a.criteria)))
        if a.timeline:
            doc.add(Svg(_svg(a), "requests (bars) and error rate (lines) over time, per arm"))
    if overall.judge_calls:
        doc.add(Para(f"Judge: {overall.judge_calls} sampled answers graded, spend {overall.judge_spend_usd:.6f} USD "
                     "(on neither arm)."))
    doc.add(Para("Intervals are always-valid confidence sequences (docs/ab.md): looking again later does not "
                 "inflate false decisions."))
    return doc


def markdown(overall: Analysis, groups: Sequence[Analysis]) -> str:
    return to_markdown(ab_document(overall, groups), Path("."))


def html_report(overall: Analysis, groups: Sequence[Analysis]) -> str:
    return to_html(ab_document(overall, groups))


def to_json(overall: Analysis, groups: Sequence[Analysis]) -> bytes:
    return orjson.dumps({"schema": SCHEMA, "overall": overall.to_json(), "groups": [g.to_json() for g in groups]},
                        option=orjson.OPT_INDENT_2)
