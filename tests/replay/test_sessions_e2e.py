"""Multi-turn sessions end to end against the mock's server model (prefill and a prefix cache)."""

from __future__ import annotations

import statistics
from pathlib import Path

import orjson
import pytest

from tests.conftest import read_json, run_profile, samples_of

TTFT_MS, PREFILL_MS = 20.0, 0.5
USER, OUTPUT, TURNS = 40, 20, 5


def by_session(samples: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for s in samples:
        out.setdefault(s["session"], []).append(s)
    return {k: sorted(v, key=lambda s: s["turn"]) for k, v in out.items()}


@pytest.mark.slow
@pytest.mark.alone
def test_five_turn_synthetic_sessions_grow_their_context_and_hit_the_prefix_cache(mock_factory, tmp_path: Path) -> None:
    # blocks of one token: the cache holds exactly the earlier prompts
    mock = mock_factory("--ttft-ms", str(TTFT_MS), "--itl-ms", "2", "--prefill-ms-per-token", str(PREFILL_MS),
                        "--prefix-cache-blocks", "1000000", "--prefix-block-tokens", "1")
    (tmp_path / "scenario.yaml").write_text(f"output_tokens: {OUTPUT}\nsessions: {{turns: {TURNS}, "
                                            f"user_tokens: {USER}}}\n")
    run = run_profile(tmp_path, "users: 2\nramp_up_s: 0\nduration_s: 6\n", "--target", mock.base_url,
                      "--model", "m", "--scenario", str(tmp_path / "scenario.yaml"))
    sessions = by_session(samples_of(run))
    complete = [turns for turns in sessions.values() if len(turns) == TURNS]
    assert len(complete) >= 10
    ttft_by_turn: dict[int, list[float]] = {}
    for turns in complete:
        assert [t["turn"] for t in turns] == list(range(1, TURNS + 1))
        assert all(t["outcome"] == "ok" and t["session_turns"] == TURNS for t in turns)
        for k, t in enumerate(turns, start=1):
            # everything sent and answered before, exactly: k user messages, k - 1 answers
            assert t["prompt_tokens"] == USER * k + OUTPUT * (k - 1)
            assert t["output_tokens"] == OUTPUT
            # the prefix cache held the previous turn's whole prompt
            assert t["cached_tokens"] == (turns[k - 2]["prompt_tokens"] if k > 1 else 0)
            ttft_by_turn.setdefault(k, []).append(t["ttft_us"] / 1000)
    s = read_json(run / "summary.json")
    turns = s["sessions"]["turns"]
    assert [t["turn"] for t in turns] == list(range(1, TURNS + 1))
    assert [t["prompt_tokens_mean"] for t in turns] == [USER * k + OUTPUT * (k - 1) for k in range(1, TURNS + 1)]
    assert [t["cached_tokens_mean"] for t in turns] == [0.0] + [USER * k + OUTPUT * (k - 1) for k in range(1, TURNS)]
    assert s["sessions"]["completed"] >= 10
    assert (run / "plots" / "turns.png").is_file()
    # last, as the machine's other load can move it: TTFT by turn is the mock's formula (median, within 2 ms)
    for k, values in ttft_by_turn.items():
        uncached = USER if k == 1 else USER + OUTPUT  # the new user message and the answer before it
        expect = TTFT_MS + PREFILL_MS * uncached
        assert expect - 0.5 <= statistics.median(values) <= expect + 2.0, (k, statistics.median(values), expect)


@pytest.mark.slow
def test_open_loop_session_arrivals_replay_recorded_answers(mock_factory, tmp_path: Path) -> None:
    mock = mock_factory("--ttft-ms", "5", "--itl-ms", "1", "--prefix-cache-blocks", "1000000",
                        "--prefix-block-tokens", "1")
    conversations = [
        {"conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "one two three"},
                           {"from": "gpt", "value": "four five"}, {"from": "human", "value": "six"},
                           {"from": "gpt", "value": "seven eight nine ten"}, {"from": "human", "value": "eleven"}]},
        {"messages": [{"role": "user", "content": "a b"}, {"role": "assistant", "content": "c"},
                      {"role": "user", "content": "d e f"}]},
    ]
    (tmp_path / "conv.jsonl").write_bytes(b"\n".join(orjson.dumps(c) for c in conversations) + b"\n")
    (tmp_path / "scenario.yaml").write_text("output_tokens: 3\nsessions: {dataset: conv.jsonl, mode: replay}\n")
    run = run_profile(tmp_path, "arrival: {kind: constant, rps: 10}\nduration_s: 3\n", "--target", mock.base_url,
                      "--model", "m", "--scenario", str(tmp_path / "scenario.yaml"))
    sessions = by_session(samples_of(run))
    assert len(sessions) == 30  # one session an arrival
    prompts = {len(turns): [t["prompt_tokens"] for t in turns] for turns in sessions.values()}
    # the recorded answers, not the mock's, make up the history: 2 + 3, then + 2 + 1, then + 4 + 1
    assert prompts == {3: [5, 8, 13], 2: [2, 6]}
    manifest = read_json(run / "manifest.json")
    assert manifest["scenario"]["sessions"]["mode"] == "replay"


@pytest.mark.slow
def test_every_turn_of_a_session_carries_its_id_in_the_session_header(tmp_path: Path) -> None:
    import asyncio
    import threading

    from aiohttp import web

    from loadbench.mock.app import create_app
    from loadbench.mock.settings import MockSettings
    from tests.conftest import run_loadbench

    seen: list[tuple[str | None, int]] = []  # (header, messages in the body) of every chat request
    ready = threading.Event()
    holder: dict[str, object] = {}

    @web.middleware
    async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.path.endswith("/chat/completions"):
            body = await request.json()
            seen.append((request.headers.get("X-Conversation"), len(body["messages"])))
        return await handler(request)

    def serve() -> None:
        loop = asyncio.new_event_loop()
        app = create_app(MockSettings(ttft_ms=1, itl_ms=1))
        app.middlewares.append(record)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        holder["port"] = runner.addresses[0][1]
        holder["stop"] = lambda: loop.call_soon_threadsafe(loop.stop)
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        (tmp_path / "scenario.yaml").write_text("output_tokens: 2\nsessions: {turns: 3, user_tokens: 3, "
                                                "session_header: X-Conversation}\n")
        (tmp_path / "profile.yaml").write_text("users: 2\nramp_up_s: 0\nmax_requests: 12\n")
        r = run_loadbench("run", "--target", f"http://127.0.0.1:{holder['port']}/v1", "--model", "m",
                          "--profile", str(tmp_path / "profile.yaml"), "--scenario", str(tmp_path / "scenario.yaml"),
                          "--no-calibrate", "--out", str(tmp_path / "results"))
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        holder["stop"]()  # type: ignore[operator]
        thread.join(10)
    turns = [(h, n) for h, n in seen if h is not None]
    by_id: dict[str, list[int]] = {}
    for h, n in turns:
        by_id.setdefault(h, []).append(n)
    assert len(turns) == 12  # every turn carried its session's id (the pre-flight request is no session's)
    for counts in by_id.values():  # each id is one conversation, growing turn by turn in order
        assert counts == [1, 3, 5][:len(counts)], by_id
    # 12 turns of 3 are four whole sessions when the two users keep in step; when one runs ahead, the
    # request quota cuts the last session of each user short (1 + 2 turns), never merges two under one id
    whole = sum(len(c) == 3 for c in by_id.values())
    assert (len(by_id), whole) in ((4, 4), (5, 3)), by_id
