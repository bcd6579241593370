"""The mock's agent: a competent trial follows the gold actions then states the facts; an incompetent one
makes its configured mistake at a drawn step and gives up; the draw depends on the task and the trace id
only, so the rate of competent trials is the configured accuracy."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from loadbench.mock.agent import GIVE_UP, AgentPlayer
from loadbench.mock.settings import MockSettings, problems
from loadbench.protocol.dialect import Answer, LLMRequest, Message, Tool

TOOLS = [{"name": "lookup", "parameters": {"required": ["order_id"]}},
         {"name": "refund", "parameters": {"required": ["order_id", "amount"]}},
         {"name": "close", "parameters": {"required": ["order_id"]}}]
GOLD = [{"tool": "lookup", "arguments": {"order_id": "A1"}}, {"tool": "refund", "arguments": {"order_id": "A1",
                                                                                            "amount": 5}}]


def _player(tmp_path: Path, accuracy: float, mistakes: str = "wrong_tool,wrong_argument,stop_early,malformed"
            ) -> AgentPlayer:
    path = tmp_path / "plans.json"
    path.write_text(json.dumps([{"id": "t1", "goal": "Refund  A1 please", "gold": GOLD, "facts": ["R-A1"],
                                 "tools": TOOLS}]))
    return AgentPlayer(MockSettings(agent=str(path), accuracy=accuracy, agent_mistakes=mistakes, seed=5))


def _play(player: AgentPlayer, trace: str, steps: int = 6) -> list[Answer]:
    messages = [Message("user", "Refund A1 please")]
    out = []
    for _ in range(steps):
        answer = player.answer(LLMRequest("m", tuple(messages), tools=(Tool("lookup"),)), trace)
        out.append(answer)
        if not answer.tool_calls:
            break
        messages += [Message("assistant", answer.text, answer.tool_calls),
                     Message("tool", "{}", tool_call_id=answer.tool_calls[0].id)]
    return out


def test_a_competent_trial_follows_the_gold_actions_then_states_the_facts(tmp_path: Path) -> None:
    answers = _play(_player(tmp_path, 1.0), "any")
    assert [(c.name, orjson.loads(c.arguments)) for a in answers for c in a.tool_calls] == \
        [(g["tool"], g["arguments"]) for g in GOLD]
    assert "R-A1" in answers[-1].text and answers[-1].finish_reason == "stop"


@pytest.mark.parametrize("kind", ["wrong_tool", "wrong_argument", "stop_early", "malformed"])
def test_each_mistake_and_then_giving_up(tmp_path: Path, kind: str) -> None:
    for trace in ("a", "b", "c", "d"):
        answers = _play(_player(tmp_path, 0.0, kind), trace)
        assert answers[-1].text == GIVE_UP and "R-A1" not in answers[-1].text
        calls = [c for a in answers for c in a.tool_calls]
        gold_calls = [(g["tool"], orjson.dumps(g["arguments"]).decode()) for g in GOLD]
        made = [(c.name, c.arguments) for c in calls]
        if kind == "stop_early":
            assert made == gold_calls[:len(made)] and len(made) < len(GOLD)
            continue
        *before, bad = made
        assert before == gold_calls[:len(before)] and bad != gold_calls[len(before)]
        if kind == "malformed":
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(bad[1])
        elif kind == "wrong_tool":
            assert bad[0] != gold_calls[len(before)][0] and bad[1] == gold_calls[len(before)][1]
        else:
            assert bad[0] == gold_calls[len(before)][0]


def test_the_competent_share_is_the_accuracy_and_depends_on_the_trace_only(tmp_path: Path) -> None:
    player = _player(tmp_path, 0.8)
    runs = {trace: _play(player, trace) for trace in (f"trace-{i}" for i in range(2000))}
    share = sum("R-A1" in r[-1].text for r in runs.values()) / len(runs)
    assert abs(share - 0.8) < 0.03
    assert [a.text for a in _play(player, "trace-7")] == [a.text for a in runs["trace-7"]]


def test_unknown_mistakes_are_refused() -> None:
    assert any(field == "agent_mistakes" for field, _ in problems(replace(MockSettings(), agent_mistakes="typo")))
