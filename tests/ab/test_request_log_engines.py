"""The same rows in a SQLite log and in a real PostgreSQL log give the same answers to every reader:
``loadbench ab``, ``log export`` (JSONL and CSV), ``log shadows``, ``dataset from-log`` and the shadow
pairs ``eval --from-log --pairs`` scores. PostgreSQL is named as a URL and as a variable holding one."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from loadbench.ab.harvest import harvest
from loadbench.ab.workflow import AbOptions, run_ab
from loadbench.cli.log_cmd import log_group
from loadbench.errors import InputError
from loadbench.gateway import logdb
from loadbench.gateway.abconfig import RequestLogSpec
from loadbench.gateway.logstore import PostgresStore
from loadbench.results.request_log import RequestLog
from tests.postgres import PostgresServer, fresh_database, postgres

__all__ = ["postgres"]

T0_MS = 1_796_000_000_000  # Dec 2026: rows over two days, so over two partitions
CRITERIA = '{"error_rate_margin": 0.05, "cost_ratio_max": 1.2, "quality_ratio_min": 0.9, "alpha": 0.05, ' \
           '"min_requests": 40}'


def _rows(seed: int = 7) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Requests of an experiment (both arms, some failing, priced, with metadata and bodies), shadow copies of
    some of them, and feedback of two tenants."""
    rng = random.Random(seed)
    rows, feedback = [], []
    for i in range(400):
        arm = "candidate" if rng.random() < 0.4 else "incumbent"
        ok = rng.random() > (0.08 if arm == "candidate" else 0.03)
        tenant = rng.choice(["k1", "k2", None])
        ts = T0_MS + i * 300_000  # every 5 minutes: 33 hours
        base = dict.fromkeys(logdb.COLUMNS)
        base.update(ts_ms=ts, request_id=f"r{i}", worker=11, model=rng.choice(["vm", "vm2"]), experiment="exp1",
                    arm=arm, target="inc" if arm == "incumbent" else "cand", status=200 if ok else 502,
                    outcome="ok" if ok else "error", ttft_ms=rng.uniform(20, 200) if ok else None,
                    tpot_ms=rng.uniform(5, 20) if ok else None, e2e_ms=rng.uniform(200, 900),
                    prompt_tokens=rng.randint(5, 50), output_tokens=rng.randint(1, 200),
                    cost_usd=round(rng.uniform(0.001, 0.01) * (1.1 if arm == "candidate" else 1), 6), attempts=1,
                    metadata=orjson.dumps({"task": rng.choice(["qa", "sum", "code"])}).decode(), tenant=tenant,
                    role="primary",
                    request_body=orjson.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}).decode()
                    if i % 3 == 0 else None)
        if i % 10 == 0:
            base["pair_id"] = f"r{i}"
        rows.append(tuple(base[c] for c in logdb.COLUMNS))
        if i % 10 == 0:
            shadow = {**base, "request_id": f"s{i}", "target": "shadow", "role": "shadow", "experiment": None,
                      "arm": None, "ts_ms": ts + 50, "cost_usd": 0.002, "request_body": None,
                      "response_body": '{"choices": [{"message": {"content": "a"}}]}'}
            rows.append(tuple(shadow[c] for c in logdb.COLUMNS))
        if tenant and rng.random() < 0.5:
            feedback.append((ts + 1000, f"r{i}", tenant, rng.choice([0.0, 0.5, 1.0]), ""))
            if rng.random() < 0.3:  # a later change of mind: the latest counts
                feedback.append((ts + 2000, f"r{i}", tenant, 1.0, "edited"))
    return rows, feedback


@pytest.fixture(scope="module")
def logs(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    rows, feedback = _rows()
    folder = tmp_path_factory.mktemp("logs")
    db = folder / "gw.db"
    conn = logdb.create(str(db))
    logdb.register(conn, [("exp1", 40.0, CRITERIA)], T0_MS - 1000, 11)
    logdb.change(conn, "exp1", "trip", None, "error rate 0.080 > 0.05", T0_MS + 10**8, 11)
    for i in range(0, len(rows), 64):
        logdb.write(conn, rows[i:i + 64], feedback if i == 0 else ())
    logdb.judge_record(conn, T0_MS + 5000, "exp1", "r3", None, None, 0.0125)
    experiments, events = logdb.experiments(conn), logdb.events(conn)
    conn.close()

    dsn = fresh_database(postgres)
    spec = RequestLogSpec(str(folder / "state.db"), 64, 0.1, 1000, None, None, "none", 0.0, (), None,
                          backend="postgres", dsn=dsn, dsn_name="test")
    store = PostgresStore(spec)
    for i in range(0, len(rows), 64):
        store.write(rows[i:i + 64], feedback if i == 0 else ())
    store.mirror(experiments, events, {"exp1": CRITERIA})
    store.close()
    with psycopg.connect(dsn) as c:  # the judge's spend, as the shared state records it beside the log
        c.execute("INSERT INTO judge_spend (ts_ms, experiment, request_id, cost_usd) VALUES (%s, %s, %s, %s)",
                  (T0_MS + 5000, "exp1", "r3", 0.0125))
    yield db, dsn


def _readers(log: RequestLog) -> dict[str, Any]:
    table = log.requests(None, None)
    since = log.requests("exp1", T0_MS + 86_400_000)
    return {
        "experiment": log.experiment("exp1"),
        "arms": log.arm_requests("exp1", None), "arms_since": log.arm_requests("exp1", T0_MS + 3_600_000),
        "judge": log.judge_spend("exp1", None), "shadows": log.shadow_pairs(None), "shadows_vm": log.shadow_pairs("vm"),
        "pairs": log.answer_pairs(), "bodies": log.request_bodies(None), "bodies_vm2": log.request_bodies("vm2"),
        "table": (table.columns, list(table.rows)), "since": (since.columns, list(since.rows)),
    }


def test_every_reader_gives_the_same_answer_on_both_engines(logs: tuple[Path, str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    db, dsn = logs
    with RequestLog.open(db) as lite:
        expected = _readers(lite)
    with RequestLog.open(dsn) as pg:
        got = _readers(pg)
    assert len(expected["table"][1]) == 440 and len(expected["pairs"]) == 40
    assert expected["experiment"].reason == "error rate 0.080 > 0.05" and expected["judge"] == (1, 0.0125)
    assert any(a.score is not None for a in expected["arms"])
    for key, value in expected.items():
        assert got[key] == value, key
    with RequestLog.open("LOG_DSN", env={"LOG_DSN": dsn}) as by_variable:
        assert by_variable.arm_requests("exp1", None) == expected["arms"]


def test_ab_export_shadows_and_harvest_print_the_same_on_both_engines(
        logs: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, dsn = logs
    monkeypatch.setenv("LOG_DSN", dsn)
    outputs = {}
    for name, source in (("sqlite", str(db)), ("url", dsn), ("variable", "LOG_DSN")):
        out: dict[str, Any] = {}
        code = run_ab(AbOptions(source, "exp1", None, "task", tmp_path / name, "md"), T0_MS / 1000 + 200_000)
        out["ab"] = (code, (tmp_path / name / "ab.json").read_bytes(), (tmp_path / name / "ab.md").read_text())
        runner = CliRunner()
        for args in (["export", source], ["export", source, "--format", "csv", "--experiment", "exp1",
                                          "--since-ms", str(T0_MS + 3_600_000)],
                     ["shadows", source], ["shadows", source, "--format", "json", "--model", "vm"]):
            result = runner.invoke(log_group, args, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            out[" ".join(args[:1] + args[2:])] = result.output
        line = harvest(source, tmp_path / "cases.jsonl", 50, "task", None, 3)  # the line names the file
        out["harvest"] = ((tmp_path / "cases.jsonl").read_bytes(), line)
        outputs[name] = out
    assert "ROLLBACK" in outputs["sqlite"]["ab"][2] and "error rate 0.080" in outputs["sqlite"]["ab"][2]
    assert outputs["sqlite"]["export"].count("\n") == 440
    assert outputs["url"] == outputs["sqlite"]
    assert outputs["variable"] == outputs["sqlite"]


def test_a_postgres_source_that_is_not_there_is_bad_input_without_its_password(postgres: PostgresServer) -> None:
    with pytest.raises(InputError, match="no environment variable NOPE_DSN"):
        RequestLog.open("NOPE_DSN", env={})
    url = f"postgresql://loadbench:s3cret@127.0.0.1:{postgres.port}/no_such_db"
    with pytest.raises(InputError) as err:
        RequestLog.open(url)
    assert "cannot connect" in str(err.value) and "s3cret" not in str(err.value)
    assert f"127.0.0.1:{postgres.port}/no_such_db" in str(err.value)
    empty = fresh_database(postgres)
    with pytest.raises(InputError, match="not a loadbench request log"):
        RequestLog.open(empty)
