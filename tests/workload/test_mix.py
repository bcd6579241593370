"""Weighted mixes and datasets in the request stream."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from loadbench.config import Scenario, load_scenario, scenario_from_dict
from loadbench.errors import ConfigError
from loadbench.workload import RequestFactory

ROOT = Path(__file__).resolve().parents[2]


def factory(scenario: Scenario, **kw: object) -> RequestFactory:
    args: dict[str, object] = {"model": "m", "stream": False, "include_usage": False, "seed": 3}
    args.update(kw)
    return RequestFactory(scenario, **args)  # type: ignore[arg-type]


def test_chat_mix_converges_to_weights_with_tags() -> None:
    f = factory(load_scenario(ROOT / "scenarios/chat-mix.yaml"))
    specs = [f.next() for _ in range(4000)]
    counts = Counter(s.request_type for s in specs)
    assert counts["short-chat"] / 4000 == pytest.approx(0.7, abs=0.03)
    by_type = {s.request_type: s for s in specs}
    assert by_type["long-document"].metadata == {"scenario": "chat-mix", "kind": "document", "tier": "batch"}
    long_prompts = [s.prompt_tokens_requested for s in specs if s.request_type == "long-document"]
    assert min(long_prompts) >= 1024 and max(long_prompts) <= 2048
    body = orjson.loads(by_type["short-chat"].body)
    assert body["messages"][0] == {
        "role": "system",
        "content": "You are a helpful assistant. Answer briefly.",
    }


def test_mix_entries_inherit_scenario_values() -> None:
    s = Scenario.model_validate(
        {
            "output_tokens": 9,
            "mix": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "output_tokens": 3}],
        }
    )
    specs = [factory(s, seed=i).next() for i in range(40)]
    assert {(x.request_type, x.output_tokens_requested) for x in specs} == {("a", 9), ("b", 3)}


def test_dataset_sampling_uses_lines_and_their_max_tokens() -> None:
    s = load_scenario(ROOT / "scenarios/dataset-fables.yaml")
    f = factory(s)
    specs = [f.next() for _ in range(200)]
    lines = [orjson.loads(x) for x in (ROOT / "scenarios/data/fables.jsonl").read_text().splitlines()]
    file_texts = {x.get("prompt") or x["messages"][-1]["content"] for x in lines}
    texts = {orjson.loads(x.body)["messages"][-1]["content"] for x in specs}
    assert len(texts) > 15 and texts <= file_texts
    limited = [x for x in specs if b"Wolf in Sheep" in x.body]
    assert limited and all(x.output_tokens_requested == 32 for x in limited)
    assert all(x.metadata == {"dataset": "fables"} for x in specs)


def test_replay_splits_lines_between_streams(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(orjson.dumps({"prompt": f"line {i}"}).decode() + "\n" for i in range(6)))
    (tmp_path / "s.yaml").write_text("api: completions\ndataset: {path: d.jsonl, order: replay}\n")
    s = load_scenario(tmp_path / "s.yaml")
    streams = [factory(s, stream_index=i, stream_count=2) for i in range(2)]
    got = [[orjson.loads(f.next().body)["prompt"] for _ in range(4)] for f in streams]
    assert got == [["line 0", "line 2", "line 4", "line 0"], ["line 1", "line 3", "line 5", "line 1"]]


def test_worker_rebuilds_scenario_with_datasets_from_the_dump() -> None:
    s = load_scenario(ROOT / "scenarios/dataset-fables.yaml")
    expected = [factory(s).next().body for _ in range(3)]
    for rebuilt in (scenario_from_dict(s.model_dump(mode="json")), Scenario.model_validate(s.model_dump())):
        assert [factory(rebuilt).next().body for _ in range(3)] == expected


def test_dataset_errors_surface_when_read_lazily(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok"}\nnot json\n')
    s = Scenario.model_validate({"dataset": {"path": str(tmp_path / "bad.jsonl")}})
    with pytest.raises(ConfigError) as info:
        factory(s)
    assert info.value.field == "line 2"
