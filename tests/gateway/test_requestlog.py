"""The request log: rows as documented, no key, bodies only when asked and redacted, drops when full."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from loadbench.errors import ConfigError
from loadbench.gateway.app import create_app
from loadbench.gateway.config import compile_model, parse_model
from loadbench.gateway.connections import GuardedRunner, RejectLog
from loadbench.gateway.state import Gateway
from tests.gateway.harness import CHAT, Upstream, ok, one_target, post, run, serve, upstream

ENV = {"CLIENT_KEYS": "sk-client-secret-1,sk-client-secret-2", "ADMIN_KEYS": "adm-secret"}


@contextlib.asynccontextmanager
async def logged(config: dict[str, Any], seed: int = 1) -> AsyncIterator[tuple[str, Gateway]]:
    spec = compile_model(parse_model(config, "test.yaml"), "test.yaml", env=ENV)
    gw = Gateway(spec, seed=seed)
    app = create_app(gw)
    async with serve(app, GuardedRunner(app, spec.limits, RejectLog(), handler_cancellation=True)) as url:
        yield url, gw


@contextlib.asynccontextmanager
async def logged_ok(db: Path, **log: Any) -> AsyncIterator[tuple[str, Gateway, aiohttp.ClientSession]]:
    """A gateway with auth and a request log in front of an answering upstream, and a client session."""
    async with upstream(Upstream(ok)) as up_url, logged(with_log(one_target(up_url), db, **log)) as (url, gw), \
            aiohttp.ClientSession() as s:
        yield url, gw, s


def rows(db: Path, where: str = "1") -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM requests WHERE {where} ORDER BY id")]
    finally:
        conn.close()


def with_log(cfg: dict[str, Any], db: Path, **log: Any) -> dict[str, Any]:
    return {**cfg, "request_log": {"path": str(db), "flush_ms": 20, **log},
            "auth": {"api_keys_env": "CLIENT_KEYS"}}


def test_absent_values_are_stored_as_sql_null(tmp_path: Path) -> None:
    from loadbench.gateway import logdb

    conn = logdb.create(str(tmp_path / "x.db"))
    row = (7, "r", 1, logdb.NULL, logdb.NULL, logdb.NULL, "t", 200, "ok", logdb.NULL, logdb.NULL, logdb.NULL, 1.5,
           logdb.NULL, logdb.NULL, logdb.NULL, logdb.NULL, 1, logdb.NULL, logdb.NULL, logdb.NULL, "primary",
           logdb.NULL, logdb.NULL)
    logdb.write(conn, [row])
    conn.close()
    (got,) = rows(tmp_path / "x.db")
    assert [k for k, v in got.items() if v is None] == [
        "model", "experiment", "arm", "cache", "ttft_ms", "tpot_ms", "prompt_tokens", "output_tokens",
        "cached_tokens", "cost_usd", "metadata", "tenant", "pair_id", "request_body", "response_body"]
    conn = sqlite3.connect(tmp_path / "x.db")
    assert conn.execute("SELECT COUNT(*) FROM requests WHERE typeof(model) = 'null' AND typeof(ttft_ms) = 'null'"
                        " AND typeof(prompt_tokens) = 'null'").fetchone() == (1,)
    conn.close()


def test_every_connection_commits_without_waiting_on_fsync(tmp_path: Path) -> None:
    from loadbench.gateway import logdb

    logdb.create(str(tmp_path / "x.db")).close()
    conn = logdb.connect(str(tmp_path / "x.db"))  # what the writer thread, feedback and admin open
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    conn.close()


def test_records_reach_the_file_within_the_flush_interval_before_a_batch_fills(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"

    async def main() -> None:
        async with logged_ok(db, flush_ms=100, batch_rows=1000) as (url, gw, s):
            for _ in range(3):
                status, _, _ = await post(s, url, CHAT, headers={"Authorization": "Bearer sk-client-secret-1"})
                assert status == 200
            log = gw.requestlog
            assert log is not None
            # 3 of 1,000 rows: only the flush timer hands them over; a busy machine gets 50 intervals
            for _ in range(100):
                if len(rows(db)) == 3:
                    break
                await asyncio.sleep(0.05)
            assert len(rows(db)) == 3 and log.dropped == 0
            await gw.close()

    run(main())


def test_one_row_per_request_with_timings_tokens_tenant_and_never_a_key(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"

    async def main() -> None:
        up = Upstream(ok)
        async with upstream(up) as up_url, logged(with_log(one_target(up_url), db)) as (url, gw), \
                aiohttp.ClientSession() as s:
            headers = {"Authorization": "Bearer sk-client-secret-1",
                       "X-Loadbench-Metadata": '{"user_id": "u1", "task": "qa"}'}
            ids = []
            for i in range(6):
                status, h, _ = await post(s, url, {**CHAT, "stream": i % 2 == 0}, headers=headers)
                assert status == 200
                ids.append({k.lower(): v for k, v in h.items()}["x-request-id"])
            status, _, _ = await post(s, url, {**CHAT, "model": "nope"}, headers=headers)
            assert status == 404
            await gw.close()
        got = rows(db)
        assert [r["request_id"] for r in got[:6]] == ids
        assert len(got) == 7
        streamed = got[0]
        assert streamed["target"] == "t" and streamed["status"] == 200 and streamed["outcome"] == "ok"
        assert streamed["output_tokens"] == 3 and streamed["prompt_tokens"] == 1
        assert 0 < streamed["ttft_ms"] <= streamed["e2e_ms"]
        assert streamed["tpot_ms"] is None or streamed["tpot_ms"] > 0  # tokens in one read have no TPOT
        assert got[1]["output_tokens"] == 1 and got[1]["ttft_ms"] is not None
        assert orjson.loads(streamed["metadata"]) == {"user_id": "u1", "task": "qa"}
        assert streamed["tenant"] == hashlib.sha256(b"sk-client-secret-1").hexdigest()
        assert got[6]["status"] == 404 and got[6]["outcome"] == "error" and got[6]["model"] is None
        assert streamed["request_body"] is None and streamed["response_body"] is None  # log_bodies: none
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("gw.db"))
        assert b"sk-client-secret" not in raw

    run(main())


def test_bodies_when_asked_with_redaction_before_writing(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"

    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url:
            cfg = with_log(one_target(up_url), db, log_bodies="all", redact=[r"\b\d{3}-\d{2}-\d{4}\b"])
            async with logged(cfg) as (url, gw), aiohttp.ClientSession() as s:
                body = {**CHAT, "messages": [{"role": "user", "content": "my ssn is 123-45-6789"}], "stream": True}
                status, _, _ = await post(s, url, body, headers={"Authorization": "Bearer sk-client-secret-2"})
                assert status == 200
                await gw.close()
        (row,) = rows(db)
        assert "[REDACTED]" in row["request_body"] and "123-45-6789" not in row["request_body"]
        assert '"content":"a"' in row["response_body"]
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("gw.db"))
        assert b"123-45-6789" not in raw

    run(main())


def test_a_full_queue_drops_and_counts_while_requests_go_on(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"

    async def main() -> None:
        async with logged_ok(db, batch_rows=4, queue_rows=8) as (url, gw, s):
            # another process holding the write lock: the writer thread waits on the disk
            blocker = sqlite3.connect(db, isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                for _ in range(20):
                    status, _, _ = await post(s, url, CHAT, headers={"Authorization": "Bearer sk-client-secret-1"})
                    assert status == 200
                log = gw.requestlog
                assert log is not None
                assert log.dropped == 12  # 20 requests, 8 kept in memory
                async with s.get(url + "/metrics", headers={"Authorization": "Bearer sk-client-secret-1"}) as r:
                    assert "loadbench_gateway_requestlog_dropped_total" in await r.text()
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            await gw.close()
        assert len(rows(db)) == 8

    run(main())


def test_retention_prunes_by_rows(tmp_path: Path) -> None:
    from loadbench.gateway import logdb

    conn = logdb.create(str(tmp_path / "x.db"))
    row = (0, "r", 1, "vm", None, None, "t", 200, "ok", None, 1.0, 1.0, 1.0, 1, 1, None, None, 1, None, None, None,
           "primary", None, None)
    logdb.write(conn, [(i, *row[1:]) for i in range(10)])
    assert logdb.prune(conn, oldest_ms=3, max_rows=5) == 5  # 0..2 by age, then the oldest beyond 5 rows
    assert [r[0] for r in conn.execute("SELECT ts_ms FROM requests ORDER BY id")] == [5, 6, 7, 8, 9]


def test_bad_request_log_config_names_the_field(tmp_path: Path) -> None:
    cfg = with_log(one_target("http://127.0.0.1:1/v1"), tmp_path / "gw.db", redact=["("])
    with pytest.raises(ConfigError, match=r"request_log.redact\[0\]"):
        compile_model(parse_model(cfg, "g.yaml"), "g.yaml", env=ENV)
    cfg = with_log(one_target("http://127.0.0.1:1/v1"), tmp_path / "gw.db", log_bodies="some")
    with pytest.raises(ConfigError, match=r"request_log\.log_bodies"):
        compile_model(parse_model(cfg, "g.yaml"), "g.yaml", env=ENV)


def test_metrics_break_requests_down_by_metadata_with_bounded_values(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"

    async def main() -> None:
        async with upstream(Upstream(ok)) as up_url, \
                logged(with_log(one_target(up_url), db, metrics_by=["task"], metrics_values_max=2)) as (url, gw), \
                aiohttp.ClientSession() as s:
            key = {"Authorization": "Bearer sk-client-secret-1"}
            for task, n in (("qa", 3), ("sum", 2), ("code", 1), ("chat", 1)):
                for _ in range(n):
                    meta = orjson.dumps({"task": task}).decode()
                    await post(s, url, {**CHAT, "stream": True}, headers={**key, "X-Loadbench-Metadata": meta})
            await post(s, url, CHAT, headers=key)  # no task: not in the breakdown
            for _ in range(50):
                log = gw.requestlog
                assert log is not None
                if log.written >= 8:
                    break
                await asyncio.sleep(0.02)
            async with s.get(url + "/metrics", headers=key) as r:
                text = await r.text()
            await gw.close()
        counts = {line.split('value="')[1].split('"')[0]: line.rsplit(" ", 1)[1] for line in text.splitlines()
                  if line.startswith("loadbench_gateway_requests_by_metadata_total{")}
        assert counts == {"qa": "3", "sum": "2", "other": "2"}  # two values kept, the rest as other
        assert 'loadbench_gateway_ttft_by_metadata_seconds_count{model="vm",key="task",value="qa"' in text

    run(main())


def test_a_whole_answer_s_usage_is_read_wherever_it_stands_in_the_answer(tmp_path: Path) -> None:
    """The usage of a whole answer comes from the parse that checks the answer: an upstream that writes
    ``usage`` before a long ``choices`` gets its tokens logged and its target's TPOT recorded."""
    db = tmp_path / "gw.db"
    answer = orjson.dumps({"usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12,
                                     "prompt_tokens_details": {"cached_tokens": 3}},
                           "object": "chat.completion",
                           "choices": [{"message": {"role": "assistant", "content": "x" * 2000}}]})

    async def usage_first(up: Upstream, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(body=answer, content_type="application/json")

    async def main() -> None:
        async with upstream(Upstream(usage_first)) as up_url, \
                logged(with_log(one_target(up_url), db)) as (url, gw), aiohttp.ClientSession() as s:
            status, _, got = await post(s, url, CHAT, headers={"Authorization": "Bearer sk-client-secret-1"})
            assert status == 200 and got == answer  # relayed byte for byte
            assert sum(gw.metrics.target("t").tpot.counts) == 1
            await gw.close()
        row = rows(db)[0]
        assert (row["prompt_tokens"], row["output_tokens"], row["cached_tokens"]) == (7, 5, 3)

    run(main())


@pytest.mark.parametrize("count", [0, 1, 3, 4, 5, 16, 63, 64, 65, 100, 255, 341])
def test_a_batch_of_any_size_is_committed_whole_in_order_and_value_for_value(tmp_path: Path, count: int) -> None:
    """``logdb.write`` inserts several rows per statement (``CHUNK_ROWS``): every size is split so
    that no row is lost, doubled or reordered and every value lands in its own column."""
    from loadbench.gateway import logdb

    conn = logdb.create(str(tmp_path / "x.db"))
    logdb.write(conn, [(1, "first", 1, *[logdb.NULL] * 3, "t", 200, "ok", *[logdb.NULL] * 3, 1.0, *[logdb.NULL] * 4,
                        1, *[logdb.NULL] * 3, "primary", logdb.NULL, logdb.NULL)])
    batch = [(1000 + i, f"r{i}", 7, f"m{i}", logdb.NULL if i % 3 else f"e{i}", logdb.NULL, "t", 200 + i % 2,
              "ok", logdb.NULL, i / 4, logdb.NULL if i % 2 else i / 8, 10.5 + i, i, 2 * i, logdb.NULL,
              i / 1e6, 1 + i % 3, logdb.NULL, logdb.NULL, f"p{i}" if i % 5 == 0 else logdb.NULL,
              "shadow" if i % 7 == 0 else "primary", logdb.NULL, f"body {i}")
             for i in range(count)]
    logdb.write(conn, batch)
    conn.close()
    got = rows(tmp_path / "x.db")
    assert [r["request_id"] for r in got] == ["first", *(f"r{i}" for i in range(count))]
    assert [r["id"] for r in got] == list(range(1, count + 2))  # ids follow the batch's order
    assert [tuple(r[c] for c in logdb.COLUMNS) for r in got[1:]] == [
        tuple(logdb.value(v) for v in row) for row in batch]


def test_a_record_s_fields_land_in_their_columns(tmp_path: Path) -> None:
    """``row_of`` takes the record's fields by position: each one must reach the column of its name."""
    from loadbench.gateway import logdb
    from loadbench.gateway.abconfig import RequestLogSpec
    from loadbench.gateway.logrecord import LogRecord
    from loadbench.gateway.requestlog import row_of
    from loadbench.pricing import Price
    from loadbench.protocol.usage import Usage

    spec = RequestLogSpec(str(tmp_path / "x.db"), 100, 0.2, 4096, None, None, "none", 0.0, (), None)
    record = LogRecord(request_id="rid", arrival_ns=1_000_000_000, first_ns=1_050_000_000, last_ns=1_250_000_000,
                       tokens=5, usage_tail=b"", cache="miss", target="tgt", model="vm", experiment="exp",
                       arm="candidate", attempts=2, metadata={"team": "a"}, tenant=b"\x01\x02", pair_id="pair",
                       role="shadow", outcome="stream_cut", status=200, end_ns=1_300_000_000, end_s=1_700_000_000.5,
                       ctx=None, usage=Usage(11, 0, 4, 0))
    price = Price.of("m", 1.0, 2.0)
    row = dict(zip(logdb.COLUMNS, (logdb.value(v) for v in row_of(record, spec, {"tgt": price}, 42)), strict=True))
    assert row == {
        "ts_ms": 1_700_000_000_200, "request_id": "rid", "worker": 42, "model": "vm", "experiment": "exp",
        "arm": "candidate", "target": "tgt", "status": 200, "outcome": "stream_cut", "cache": "miss",
        "ttft_ms": 50.0, "tpot_ms": 50.0, "e2e_ms": 300.0, "prompt_tokens": 11, "output_tokens": 5,
        "cached_tokens": 4, "cost_usd": pytest.approx((11 * 1.0 + 5 * 2.0) / 1e6), "attempts": 2,
        "metadata": '{"team":"a"}', "tenant": "0102", "pair_id": "pair", "role": "shadow", "request_body": None,
        "response_body": None}
    absent = record._replace(cache="hit-exact", model=None, experiment="", arm="", metadata=None, tenant=None,
                             pair_id="", first_ns=0, tokens=1, outcome="", status=499, usage=None)
    row = dict(zip(logdb.COLUMNS, (logdb.value(v) for v in row_of(absent, spec, {"tgt": price}, 42)), strict=True))
    assert (row["outcome"], row["cost_usd"], row["ttft_ms"], row["tpot_ms"], row["prompt_tokens"],
            row["output_tokens"], row["model"], row["tenant"], row["pair_id"]) == (
        "client_gone", 0.0, None, None, None, 1, None, None, None)


def test_a_record_keeps_the_answer_s_bytes_only_while_its_usage_is_not_decoded(tmp_path: Path) -> None:
    """A whole answer's usage is decoded on the loop: its record does not keep the answer (the queue
    would hold every waiting answer's bytes); a stream's tail still goes to the writer to be read."""
    from loadbench.gateway import logdb
    from loadbench.gateway.abconfig import RequestLogSpec
    from loadbench.gateway.context import RequestContext
    from loadbench.gateway.requestlog import record_of, row_of
    from loadbench.protocol.usage import Usage

    spec = RequestLogSpec(str(tmp_path / "x.db"), 100, 0.2, 4096, None, None, "none", 0.0, (), None)
    whole = RequestContext("a", 1_000_000_000, "chat")
    whole.usage_tail = b'{"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}'
    whole.usage = Usage(3, 4, 0, 0)
    stream = RequestContext("b", 1_000_000_000, "chat")
    stream.usage_tail = b'data: {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 6}}\n\n'
    records = [record_of(ctx, 200, 1_100_000_000, 1_700_000_000.0) for ctx in (whole, stream)]
    assert [r.usage_tail for r in records] == [b"", stream.usage_tail]
    tokens = [tuple(logdb.value(v) for v in row_of(r, spec, {}, 1)[13:15]) for r in records]
    assert tokens == [(3, 4), (5, 6)]
