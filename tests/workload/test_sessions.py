"""Multi-turn sessions: the scenario block, conversation files, the seeded scripts and each turn's request."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from loadbench.config import scenario_from_dict
from loadbench.config.sessions import read_conversations
from loadbench.errors import ConfigError
from loadbench.mock import bodies
from loadbench.protocol.registry import DEFAULT, dialect
from loadbench.workers.session import TextKeeper
from loadbench.workload.requests import RequestFactory
from loadbench.workload.sessions import SessionFactory


def factory(data: dict, base: Path | None = None, **kw: object) -> SessionFactory:
    scenario = scenario_from_dict(data, base_dir=base)
    requests = RequestFactory(scenario, model="m", stream=True, include_usage=True, seed=1)
    return SessionFactory(scenario, requests, seed=1, **kw)  # type: ignore[arg-type]


def test_synthetic_scripts_are_seeded_and_each_turn_carries_the_conversation_so_far() -> None:
    f = factory({"system_prompt": "be brief", "output_tokens": 7,
                 "sessions": {"turns": 3, "user_tokens": 10, "think_ms": 250}})
    script = f.new()
    assert len(script.users) == 3 and all(len(u.split()) == 10 for u in script.users)
    assert script.think_s == (0.0, 0.25, 0.25) and script.output_tokens == (7, 7, 7)
    assert [s.users for s in (factory({"sessions": {"turns": 3, "user_tokens": 10}}).new(),)] == [
        factory({"sessions": {"turns": 3, "user_tokens": 10}}).new().users]  # same seed, same script
    history = [{"role": "user", "content": script.users[0]}, {"role": "assistant", "content": "x y"}]
    spec = f.turn_request(script, 1, history)
    body = orjson.loads(spec.body)
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["messages"][-1]["content"] == script.users[1]
    assert body["max_tokens"] == 7 and spec.request_type == "session"
    assert spec.prompt_tokens_requested == 2 + 10 + 2 + 10


def test_two_sessions_never_share_a_prefix_by_chance() -> None:
    f = factory({"sessions": {"turns": 1, "user_tokens": 5}})
    a, b = f.new(), f.new()
    assert a.session_id != b.session_id and a.users[0].split()[0] != b.users[0].split()[0]


def test_conversations_are_read_and_checked(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    p.write_text('{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}, '
                 '{"from": "human", "value": "bye"}]}\n')
    (conv,) = read_conversations(p, replay=True)
    assert [(t.user, t.answer) for t in conv.turns] == [("hi", "hello"), ("bye", None)]
    p.write_text('{"conversations": [{"from": "human", "value": "hi"}, {"from": "human", "value": "again"}]}\n')
    with pytest.raises(ConfigError) as err:
        read_conversations(p, replay=False)
    assert err.value.path == f"{p}:1" and "two user turns" in err.value.problem
    p.write_text('{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "a"}]}\n'
                 '{"conversations": [{"from": "robot", "value": "hi"}]}\n')
    with pytest.raises(ConfigError) as err:
        read_conversations(p, replay=False)
    assert err.value.path == f"{p}:2" and err.value.field == "from"


def test_replay_mode_needs_recorded_answers_and_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="replay mode"):
        scenario_from_dict({"sessions": {"mode": "replay"}})
    (tmp_path / "c.jsonl").write_text('{"messages": [{"role": "user", "content": "a"}, '
                                      '{"role": "user", "content": "b"}]}\n')
    with pytest.raises(ConfigError, match="two user turns"):
        scenario_from_dict({"sessions": {"mode": "replay", "dataset": "c.jsonl"}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="mix or dataset"):
        scenario_from_dict({"sessions": {}, "mix": [{"name": "a", "weight": 1}]})


def test_replayed_sessions_take_the_dataset_in_order_per_worker(tmp_path: Path) -> None:
    lines = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"},
                           {"role": "user", "content": f"r{i}"}]} for i in range(4)]
    (tmp_path / "c.jsonl").write_bytes(b"\n".join(orjson.dumps(x) for x in lines))
    f = factory({"sessions": {"mode": "replay", "dataset": "c.jsonl"}}, tmp_path, stream_index=1, stream_count=2)
    assert [f.new().users[0] for _ in range(3)] == ["q1", "q3", "q1"]
    script = f.new()
    assert script.answers == ("a3", None)


def test_text_keeper_keeps_the_answer_of_a_stream_and_of_a_whole_body() -> None:
    tpl = bodies.stream_template(chat=True, response_id="x", created=0, model="m", prompt_tokens=3,
                                 completion_tokens=2, include_usage=True)
    keeper = TextKeeper(dialect(DEFAULT))
    decoder = keeper.decoder()
    for piece in (tpl.first, tpl.chunk(" tok0"), tpl.chunk(" tok1") + tpl.tail):
        decoder.feed(piece)
    assert keeper.text == " tok0 tok1"
    whole = TextKeeper(dialect(DEFAULT))
    whole.decode(bodies.completion_body(chat=True, response_id="x", created=0, model="m", text="a b",
                                        prompt_tokens=1, completion_tokens=2, with_usage=True))
    assert whole.text == "a b" and whole.end_marker == dialect(DEFAULT).end_marker
