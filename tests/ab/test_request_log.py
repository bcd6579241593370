"""The request log reader on a log written by the gateway's own statements (loadbench.gateway.logdb):
each query returns the rows its command needs, as frozen records."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from loadbench.errors import InputError
from loadbench.gateway import logdb
from loadbench.results.request_log import NO_VALUE, RequestLog, metadata_value


def _row(**kw: Any) -> tuple[object, ...]:
    base: dict[str, object] = {c: None for c in logdb.COLUMNS}
    base.update(ts_ms=1000, request_id="r", worker=1, status=200, outcome="ok", attempts=1, role="primary")
    base.update(kw)
    return tuple(base[c] for c in logdb.COLUMNS)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "gw.db"
    conn = logdb.create(str(path))
    logdb.register(conn, [("exp1", 10.0, '{"min_requests": 5}')], 500, 1)
    logdb.write(conn, [
        _row(ts_ms=1000, request_id="a", experiment="exp1", arm="incumbent", target="t1", cost_usd=0.5,
             tenant="k1", metadata='{"task": "qa"}', model="vm", request_body='{"prompt": "hi"}', pair_id="a"),
        _row(ts_ms=2000, request_id="b", experiment="exp1", arm="candidate", target="t2", outcome="error",
             status=502, tenant="k1", model="other", request_body="not json"),
        _row(ts_ms=1100, request_id="a-sh", target="sh", role="shadow", pair_id="a", model="vm", cost_usd=0.25,
             response_body='{"choices": []}'),
    ], feedback=[(1500, "a", "k1", 0.0, ""), (1600, "a", "k1", 1.0, ""), (1700, "a", "k2", 0.5, "")])
    logdb.judge_record(conn, 3000, "exp1", "a", "k1", 0.75, 0.125)
    conn.close()
    return path


def test_opening_something_that_is_not_a_log_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        RequestLog.open(tmp_path / "missing.db")
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE x (y)")
    with pytest.raises(InputError, match="not a loadbench request log"):
        RequestLog.open(tmp_path / "other.db")


def test_an_experiments_requests_carry_the_latest_feedback_of_the_same_tenant(log: Path) -> None:
    with RequestLog.open(log) as r:
        exp = r.experiment("exp1")
        assert (exp.state, exp.reason, exp.criteria) == ("running", "", {"min_requests": 5})
        rows = r.arm_requests("exp1", None)
        # the judge's grade (0.75) is the latest of tenant k1's; k2's 0.5 is another tenant's
        assert sorted((x.arm, x.outcome, x.cost_usd, x.score) for x in rows) == [
            ("candidate", "error", None, None), ("incumbent", "ok", 0.5, 0.75)]
        assert [x.arm for x in r.arm_requests("exp1", 1500)] == ["candidate"]
        assert r.judge_spend("exp1", None) == (1, 0.125) and r.judge_spend("exp1", 4000) == (0, 0.0)
        with pytest.raises(InputError, match=r"no experiment 'nope' in the log \(experiments: exp1\)"):
            r.experiment("nope")


def test_shadows_pair_with_their_primary(log: Path) -> None:
    with RequestLog.open(log) as r:
        (pair,) = r.shadow_pairs(None)
        assert (pair.model, pair.shadow.target, pair.shadow.cost_usd, pair.primary.target) == ("vm", "sh", 0.25, "t1")
        assert r.shadow_pairs("other") == []
        (answers,) = r.answer_pairs()
        assert answers.pair_id == "a" and answers.primary.ok and answers.shadow.response_body == '{"choices": []}'
        assert (answers.primary.request_body, answers.shadow.request_body) == ('{"prompt": "hi"}', None)


def test_bodies_by_model_and_the_whole_table(log: Path) -> None:
    with RequestLog.open(log) as r:
        assert [b.request_id for b in r.request_bodies(None)] == ["a", "b"]
        assert [b.request_id for b in r.request_bodies("vm")] == ["a"]
        table = r.requests("exp1", 1500)
        assert table.columns == ("id", *logdb.COLUMNS)
        assert [row[table.columns.index("request_id")] for row in table.rows] == ["b"]


def test_a_metadata_value_or_none() -> None:
    assert metadata_value('{"task": "qa", "n": 3}', "n") == "3"
    assert metadata_value('{"task": "qa"}', "tenant") == metadata_value(None, "task") == NO_VALUE
