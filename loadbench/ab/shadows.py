"""``loadbench log shadows``: shadowed requests side by side, the primary and each shadow target over
the same pairs, summarised as ``loadbench ab`` summarises an arm."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import orjson

from loadbench.ab.analysis import ArmSummary, LoggedRequest, summarize_arm
from loadbench.report.document import markdown_table
from loadbench.results.request_log import ShadowPair


@dataclass(frozen=True, slots=True)
class ShadowSides:
    model: str  # the virtual model
    target: str  # the shadow target
    pairs: int
    primary: ArmSummary
    shadow: ArmSummary


def side_by_side(pairs: Sequence[ShadowPair]) -> list[ShadowSides]:
    """One entry per (virtual model, shadow target), in name order."""
    sides: dict[tuple[str, str], tuple[list[LoggedRequest], list[LoggedRequest]]] = {}
    for p in pairs:
        s, q = p.shadow, p.primary
        shadow_side, primary_side = sides.setdefault((p.model, s.target), ([], []))
        shadow_side.append(LoggedRequest(s.target, s.ts_ms, s.outcome, s.ttft_ms, s.e2e_ms, s.cost_usd))
        primary_side.append(LoggedRequest("primary", q.ts_ms, q.outcome, q.ttft_ms, q.e2e_ms, q.cost_usd))
    return [ShadowSides(vm, target, len(shadow_side), summarize_arm("primary", primary_side),
                        summarize_arm(target, shadow_side))
            for (vm, target), (shadow_side, primary_side) in sorted(sides.items())]


def to_json(sides: Sequence[ShadowSides]) -> str:
    return orjson.dumps([{"model": s.model, "shadow": s.target, "pairs": s.pairs, "primary": asdict(s.primary),
                          "shadow_arm": asdict(s.shadow)} for s in sides], option=orjson.OPT_INDENT_2).decode()


def markdown(sides: Sequence[ShadowSides]) -> str:
    rows = []
    for s in sides:
        for a in (s.primary, s.shadow):
            rows.append([s.model, a.arm, str(s.pairs), f"{a.error_rate:.2%}", f"{a.ttft.p50_ms}/{a.ttft.p95_ms}",
                         f"{a.e2e.p50_ms}/{a.e2e.p95_ms}",
                         "–" if a.cost_per_request is None else f"{a.cost_per_request:.6f}", f"{a.cost_usd:.6f}"])
    return markdown_table(["model", "side", "pairs", "error rate", "TTFT P50/P95 ms", "E2E P50/P95 ms",
                           "cost / request", "spend"], rows)
