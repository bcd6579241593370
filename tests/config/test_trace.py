"""Trace files: the three formats read and checked line by line, the schedule (speed, sample, workers), the
prompt text that carries a Mooncake trace's prefix sharing, and the profile and plan of a replay."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from loadbench.config.profile import Profile
from loadbench.config.trace import load_trace, read_trace, schedule
from loadbench.config.validation import validate
from loadbench.errors import ConfigError
from loadbench.gateway import logdb
from loadbench.plan.load import LoadPlan
from loadbench.workload.traceprompts import TracePrompts


def mooncake(tmp_path: Path, rows: list[dict], name: str = "t.jsonl") -> Path:
    p = tmp_path / name
    p.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    return p


ROWS = [{"timestamp": 0, "input_length": 600, "output_length": 10, "hash_ids": [1, 2]},
        {"timestamp": 250, "input_length": 1024, "output_length": 5, "hash_ids": [1, 3]},
        {"timestamp": 100, "input_length": 30, "output_length": 1, "hash_ids": [7]}]


def test_mooncake_is_read_in_time_order_with_offsets_from_the_first(tmp_path: Path) -> None:
    trace = read_trace(str(mooncake(tmp_path, ROWS)))
    assert trace.format == "mooncake"
    assert [(r.offset_ms, r.prompt_tokens, r.output_tokens, r.hash_ids) for r in trace.requests] == [
        (0.0, 600, 10, (1, 2)), (100.0, 30, 1, (7,)), (250.0, 1024, 5, (1, 3))]


def test_azure_csv_rows(tmp_path: Path) -> None:
    p = tmp_path / "azure.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                 "2023-11-16 18:15:46.6805900,374,44\n"
                 "2023-11-16 18:15:50.9951690,396,109\n"
                 "2023-11-16 18:15:47.0000000,1000,1\n")
    trace = read_trace(str(p))
    assert trace.format == "azure"
    assert [r.prompt_tokens for r in trace.requests] == [374, 1000, 396]
    assert trace.requests[1].offset_ms == pytest.approx(319.41, abs=0.01)
    assert trace.requests[2].offset_ms == pytest.approx(4314.579, abs=0.01)


@pytest.mark.parametrize(("line", "field", "fix"), [
    ('{"timestamp": 5, "input_length": 0, "output_length": 3}', "input_length", "fix or drop this line"),
    ('{"timestamp": -1, "input_length": 9, "output_length": 3}', "timestamp", "ms from the trace's start"),
    ('{"timestamp": 1, "input_length": "x", "output_length": 3}', "input_length", "integer"),
    ('{"timestamp": 1, "input_length": 5, "output_length": 3, "hash_ids": [1, "a"]}', "hash_ids", "block ids"),
    ('{"timestamp": 1, "input_length": 5', "(line)", "one JSON object a line"),
])
def test_a_bad_mooncake_line_is_named_with_its_field_and_fix(tmp_path: Path, line: str, field: str, fix: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"timestamp": 0, "input_length": 9, "output_length": 3}\n' + line + "\n")
    with pytest.raises(ConfigError) as err:
        read_trace(str(p))
    assert err.value.path == f"{p}:2" and err.value.field == field and fix in err.value.fix


def test_azure_header_and_time_are_checked(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,3\n")
    with pytest.raises(ConfigError, match="GeneratedTokens"):
        read_trace(str(p))
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,3,4\nyesterday,3,4\n")
    with pytest.raises(ConfigError) as err:
        read_trace(str(p))
    assert err.value.path == f"{p}:3" and err.value.field == "TIMESTAMP"


def test_missing_file_unknown_extension_and_empty_trace(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        read_trace(str(tmp_path / "none.jsonl"))
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"arrival\.format"):
        read_trace(str(tmp_path / "t.txt"))
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(ConfigError, match="no request"):
        read_trace(str(tmp_path / "e.jsonl"))


def test_schedule_scales_time_samples_and_splits_between_workers(tmp_path: Path) -> None:
    rows = [{"timestamp": 10 * i, "input_length": 5, "output_length": 1} for i in range(1000)]
    trace = read_trace(str(mooncake(tmp_path, rows)))
    full = list(schedule(trace, speed=2.0, sample=1.0, seed=0))
    assert [a.offset_ns for a in full[:3]] == [0, 5_000_000, 10_000_000]
    sampled = list(schedule(trace, speed=1.0, sample=0.25, seed=3))
    assert 200 < len(sampled) < 300
    assert sampled == list(schedule(trace, speed=1.0, sample=0.25, seed=3))  # seeded
    shares = [list(schedule(trace, speed=1.0, sample=0.25, seed=3, worker_index=w, worker_count=3)) for w in range(3)]
    assert sorted((a for s in shares for a in s), key=lambda a: a.index) == sampled
    assert len(list(schedule(trace, speed=1.0, sample=1.0, seed=0, max_count=7))) == 7


def test_gateway_log_rows_are_primary_answered_requests_with_model_and_metadata(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    conn = logdb.create(str(db))
    rows = [(1000, "vm-a", "primary", 12, 3, '{"team": "x"}'), (1500, "vm-b", "primary", 40, 8, None),
            (1500, "vm-b", "shadow", 40, 8, None), (1700, "vm-a", "primary", None, None, None)]
    blank = dict.fromkeys(logdb.COLUMNS)
    logdb.write(conn, [tuple({**blank, "ts_ms": ts, "request_id": "r", "worker": 1, "model": model, "status": 200,
                              "outcome": "ok", "attempts": 1, "prompt_tokens": pt, "output_tokens": ot,
                              "metadata": meta, "role": role}.values())
                       for ts, model, role, pt, ot, meta in rows])
    conn.close()
    trace = read_trace(str(db))
    assert trace.format == "gateway"
    assert [(r.offset_ms, r.model, r.prompt_tokens, r.output_tokens, dict(r.metadata)) for r in trace.requests] == [
        (0.0, "vm-a", 12, 3, {"team": "x"}), (500.0, "vm-b", 40, 8, {})]


def test_trace_prompts_share_text_exactly_where_hash_ids_share_a_prefix() -> None:
    from loadbench.config.trace import TraceRequest

    prompts = TracePrompts(seed=1, block_tokens=16, prompt_scale=1.0)
    a = prompts.text(TraceRequest(0, 40, 1, (1, 2, 3)), 0).split()
    b = prompts.text(TraceRequest(0, 40, 1, (1, 2, 9)), 1).split()
    c = prompts.text(TraceRequest(0, 20, 1, (5,)), 2).split()
    assert len(a) == len(b) == 40 and len(c) == 20
    assert a[:32] == b[:32] and a[32:] != b[32:]
    assert c[:16] != a[:16]
    # words past the listed blocks are the request's own
    assert prompts.text(TraceRequest(0, 20, 1, (5,)), 3).split()[16:] != c[16:]
    scaled = TracePrompts(seed=1, block_tokens=16, prompt_scale=0.5)
    assert len(scaled.text(TraceRequest(0, 40, 1, (1, 2, 3)), 0).split()) == 20


def test_a_profile_with_a_trace_reads_it_and_plans_its_span(tmp_path: Path) -> None:
    p = mooncake(tmp_path, [{"timestamp": 100 * i, "input_length": 5, "output_length": 1} for i in range(51)])
    profile = validate(Profile, {"arrival": {"trace": str(p), "speed": 2.0}}, "test")
    assert profile.arrival is not None
    a = profile.arrival
    assert (a.trace_requests, a.trace_span_s, a.format) == (51, 2.5, "mooncake")
    plan = profile.load_plan()
    assert plan.mode == "open" and plan.trace is not None
    assert plan.total_s == pytest.approx(3.5)  # the last send at 2.5 s, then the tail
    assert plan.offered_arrivals(0.0, plan.total_s) == pytest.approx(51)
    assert LoadPlan.from_json(plan.to_json()) == plan
    with pytest.raises(ConfigError) as err:
        validate(Profile, {"arrival": {"trace": str(p), "rps": 3}}, "test")
    assert "rps" in str(err.value)
    with pytest.raises(ConfigError, match="no such file"):
        validate(Profile, {"arrival": {"trace": str(tmp_path / "gone.jsonl")}}, "test")


def test_load_trace_reads_a_file_once_per_version(tmp_path: Path) -> None:
    p = mooncake(tmp_path, ROWS)
    first = load_trace(str(p))
    assert load_trace(str(p)) is first
    rng = random.Random(0)
    mooncake(tmp_path, [{**r, "output_length": rng.randint(50, 60)} for r in ROWS] * 2)
    assert len(load_trace(str(p)).requests) == 6


def test_a_database_log_is_named_by_its_variable_and_never_by_its_url(tmp_path: Path) -> None:
    from loadbench.config.trace import trace_location

    url = "postgresql://u:hunter2@127.0.0.1:1/db"
    with pytest.raises(ConfigError) as err:
        read_trace(url)
    assert "give the variable's name" in str(err.value) and "hunter2" not in str(err.value)
    with pytest.raises(ConfigError, match="does not hold a postgresql:// URL") as err:
        read_trace("LOG_VAR", env={"LOG_VAR": "mysql://u:hunter2@h/db"})
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigError, match="not a mooncake trace"):
        read_trace("LOG_VAR", "mooncake", env={"LOG_VAR": url})
    with pytest.raises(ConfigError, match="no such file, and no environment variable LOG_VAR is set"):
        read_trace("LOG_VAR", env={})
    # a server that is not there: the message names the variable and the server, never the password
    with pytest.raises(ConfigError, match=r"cannot connect") as err:
        read_trace("LOG_VAR", env={"LOG_VAR": url})
    assert "from LOG_VAR" in str(err.value) and "hunter2" not in str(err.value)
    # the plan keeps the variable's name for a database, the absolute path for a file
    assert trace_location("LOG_VAR", {"LOG_VAR": url}) == "LOG_VAR"
    p = mooncake(tmp_path, ROWS)
    assert trace_location(str(p), {}) == str(p.resolve())
