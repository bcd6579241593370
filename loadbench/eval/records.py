"""The lines of an evaluation folder: one scored call (outputs.jsonl), one judge verdict
(judgements.jsonl). Each is a frozen record with one to_json / from_json.

A call record is written when the call finishes, with its deterministic scores; judge and
code_tests scores arrive later as judgement lines and are merged by ``aggregate``. ``repeat`` is
global across sessions (an ``--append`` session continues the numbering).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadbench.eval.criteria import Score
from loadbench.pricing import Usage

CALL_SCHEMA = "loadbench.eval.call/1"
JUDGEMENT_SCHEMA = "loadbench.eval.judgement/1"


@dataclass(frozen=True, slots=True)
class CallRecord:
    target: str
    case_id: str
    repeat: int
    session: int
    ok: bool
    text: str
    finish_reason: str | None
    usage: Usage
    attempts: int = 1
    error: str | None = None
    status: int | None = None
    cache: str | None = None  # the gateway's x-loadbench-cache value, when there is one
    ttft_ms: float | None = None  # first content token - send (the workers' rule)
    e2e_ms: float | None = None
    cost: float = 0.0  # all attempts, with the cache as observed
    cost_nocache: float = 0.0
    usage_estimated: bool = False
    scores: dict[str, Score] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"schema": CALL_SCHEMA, "target": self.target, "case_id": self.case_id, "repeat": self.repeat,
                "session": self.session, "ok": self.ok, "text": self.text, "finish_reason": self.finish_reason,
                "usage": self.usage.to_json(), "attempts": self.attempts, "error": self.error,
                "status": self.status, "cache": self.cache, "ttft_ms": self.ttft_ms, "e2e_ms": self.e2e_ms,
                "cost": self.cost, "cost_nocache": self.cost_nocache, "usage_estimated": self.usage_estimated,
                "scores": {k: v.to_json() for k, v in self.scores.items()}}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> CallRecord:
        return cls(
            target=obj["target"], case_id=obj["case_id"], repeat=int(obj["repeat"]), session=int(obj["session"]),
            ok=bool(obj["ok"]), text=str(obj["text"]), finish_reason=obj.get("finish_reason"),
            usage=Usage.from_json(obj.get("usage", {})), attempts=int(obj.get("attempts", 1)),
            error=obj.get("error"), status=obj.get("status"), cache=obj.get("cache"), ttft_ms=obj.get("ttft_ms"),
            e2e_ms=obj.get("e2e_ms"), cost=float(obj.get("cost", 0.0)),
            cost_nocache=float(obj.get("cost_nocache", 0.0)), usage_estimated=bool(obj.get("usage_estimated")),
            scores={k: Score.from_json(v) for k, v in obj.get("scores", {}).items()})

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.target, self.case_id, self.repeat)


@dataclass(frozen=True, slots=True)
class Judgement:
    """A late score of one call (judge rubric or code_tests), or a pairwise verdict.

    kind "score": ``target``/``case_id``/``repeat`` name the call, ``criterion`` and ``score``.
    kind "pair": ``target`` is the candidate, ``other`` the incumbent; ``first``/``second`` are
    the judge's winners in both orders mapped back to targets ("tie" or a target name);
    ``winner`` is their agreement or "tie".
    """

    kind: str
    judge: str
    target: str
    case_id: str
    repeat: int
    criterion: str = ""
    score: Score | None = None
    other: str = ""
    first: str = ""
    second: str = ""
    winner: str = ""
    cost: float = 0.0
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": JUDGEMENT_SCHEMA, "kind": self.kind, "judge": self.judge,
                               "target": self.target, "case_id": self.case_id, "repeat": self.repeat,
                               "cost": self.cost, "cached": self.cached}
        if self.kind == "score":
            assert self.score is not None
            out.update(criterion=self.criterion, score=self.score.to_json())
        else:
            out.update(other=self.other, first=self.first, second=self.second, winner=self.winner)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Judgement:
        score = Score.from_json(obj["score"]) if obj.get("score") else None
        return cls(kind=obj["kind"], judge=obj["judge"], target=obj["target"], case_id=obj["case_id"],
                   repeat=int(obj["repeat"]), criterion=obj.get("criterion", ""), score=score,
                   other=obj.get("other", ""), first=obj.get("first", ""), second=obj.get("second", ""),
                   winner=obj.get("winner", ""), cost=float(obj.get("cost", 0.0)), cached=bool(obj.get("cached")))
