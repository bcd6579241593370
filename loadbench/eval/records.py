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
# the header an agent trial's requests carry its trace id in (a gateway's log joins with the trace)
TRACE_HEADER = "x-loadbench-trace"
JUDGEMENT_SCHEMA = "loadbench.eval.judgement/1"


@dataclass(frozen=True, slots=True)
class AgentTrial:
    """What an agent trial adds to its call record (one record per trial; its step-by-step trace is in
    traces.jsonl under ``trace_id``). ``trace`` is the short form the report shows for a failed trial."""

    trace_id: str
    stop: str  # "answer", or the limit or failure that ended the loop (agentscore)
    steps: int
    tool_calls: int  # every call the model made, malformed ones included
    invalid_calls: int  # unknown tool or arguments that fail the schema (returned to the model as errors)
    tool_errors: int  # valid calls whose tool raised (returned to the model as errors)
    gold_calls: int
    matched_calls: int  # valid calls matching a gold action (multiset intersection)
    ttft_steps_ms: tuple[float, ...] = ()
    tokens: int = 0  # prompt + completion, every step
    trace: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k in self.__dataclass_fields__
                for v in [getattr(self, k)]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> AgentTrial:
        return cls(str(obj["trace_id"]), str(obj["stop"]), int(obj["steps"]), int(obj["tool_calls"]),
                   int(obj["invalid_calls"]), int(obj["tool_errors"]), int(obj["gold_calls"]),
                   int(obj["matched_calls"]), tuple(float(x) for x in obj.get("ttft_steps_ms", ())),
                   int(obj.get("tokens", 0)), tuple(str(x) for x in obj.get("trace", ())))


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
    agent: AgentTrial | None = None  # an agent trial's steps and diagnostics

    def to_json(self) -> dict[str, Any]:
        out = self._json()
        if self.agent is not None:
            out["agent"] = self.agent.to_json()
        return out

    def _json(self) -> dict[str, Any]:
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
            scores={k: Score.from_json(v) for k, v in obj.get("scores", {}).items()},
            agent=AgentTrial.from_json(obj["agent"]) if obj.get("agent") else None)

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
