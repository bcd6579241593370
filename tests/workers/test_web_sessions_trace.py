"""`loadbench run --web` in headless Chromium with the start form's session and trace fields: their bad
values get the CLI's messages in the page before any load, a sessions run shows its results by turn
(prompt tokens growing, the mock's prefix cache reading the earlier turns) and a trace replay its fidelity,
each in the page and in its run folder."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from tests.conftest import mock_stats, read_json, samples_of
from tests.workers.test_web import CHROMIUM, _web

pytestmark = pytest.mark.slow

USER, OUTPUT, TURNS = 10, 4, 3
TRACE_REQUESTS = 40


def _fill(page, fields: dict[str, str]) -> None:
    """Locust's form with these values (its own fields by their names, loadbench's under Custom parameters)."""
    page.fill("input[name=userCount]", fields.pop("userCount", "2"))
    page.fill("input[name=spawnRate]", "10")
    if not page.is_visible("input[name=runTime]"):
        page.click("text=Advanced options")
    page.fill("input[name=runTime]", fields.pop("runTime", ""))
    if not page.is_visible("input[name=scenario]"):
        page.click("text=Custom parameters")
    for name, value in fields.items():  # the page names its inputs in camelCase (the form posts snake_case)
        head, *rest = name.split("_")
        page.fill(f"input[name={head + ''.join(w.title() for w in rest)}]", value)
    page.click("button[type=submit]")


SESSION_FIELDS = ("session_turns", "session_dataset", "session_user_tokens", "think_ms", "session_header")
TRACE_FIELDS = ("trace",)


def _form(**fields: str) -> dict[str, str]:
    """Every session and trace field, empty unless given (the page keeps the last start's values)."""
    base = dict.fromkeys(SESSION_FIELDS + TRACE_FIELDS, "")
    return {**base, "trace_speed": "1", "trace_sample": "1", "scenario": "scenarios/default.yaml", **fields}


def test_sessions_and_a_trace_replay_started_from_the_page(tmp_path: Path, mock_factory) -> None:
    from playwright.sync_api import expect, sync_playwright

    # blocks of one token: the mock's prefix cache holds exactly the earlier prompts
    mock = mock_factory("--ttft-ms", "5", "--itl-ms", "1", "--prefix-cache-blocks", "1000000",
                        "--prefix-block-tokens", "1")
    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(b"".join(orjson.dumps({"timestamp": 50 * i, "input_length": 20 + i, "output_length": 3}) + b"\n"
                               for i in range(TRACE_REQUESTS)))
    with _web(tmp_path, mock.base_url, "mock-model") as web, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(web["url"])
        page.wait_for_selector("form")

        # bad values: the CLI's (and a scenario file's) messages in the page, nothing sent
        for fields, message in [
            ({"think_ms": "1000"}, "think_ms: applies to sessions; set session turns or a session dataset"),
            ({"session_turns": "uniform min=3"}, "sessions.turns.max: kind 'uniform' needs min, max"),
            ({"trace": str(trace), "trace_speed": "0"}, "--speed: 0 is not in the range 0<x<=10000"),
            ({"trace": str(tmp_path / "gone.jsonl")}, "gone.jsonl: arrival.trace: no such file"),
        ]:
            _fill(page, _form(**fields))
            expect(page.get_by_text(message).first).to_be_visible(timeout=10_000)
        assert mock_stats(mock)["requests"] == 0
        assert not web["out"].exists() or not any(web["out"].iterdir())

        # a sessions run: two users, three synthetic turns each, results by turn in the page
        _fill(page, _form(userCount="2", runTime="4s", session_turns=str(TURNS), session_user_tokens=str(USER),
                          think_ms="10", session_header="X-Conversation", max_tokens=str(OUTPUT)))
        page.get_by_role("tab", name="loadbench").click(timeout=30_000)
        turns = page.locator("#lb-turns tr")
        expect(turns).to_have_count(1 + TURNS, timeout=120_000)
        cells = [turns.nth(k).locator("td").all_inner_texts() for k in range(1, TURNS + 1)]
        # turn, requests, ok, TTFT P50, TTFT P99, ITL mean, prompt tokens, cached tokens
        assert [c[0] for c in cells] == [str(k) for k in range(1, TURNS + 1)]
        # everything sent and answered before, exactly (means: whole numbers here), and the previous turn cached
        prompt = [USER * k + OUTPUT * (k - 1) for k in range(1, TURNS + 1)]
        assert [float(c[6]) for c in cells] == prompt, cells
        assert [float(c[7]) for c in cells] == [0.0, *prompt[:-1]], cells
        expect(page.locator("#lb-sessions")).to_contain_text("completed every turn")
        (first,) = [d for d in web["out"].iterdir() if d.is_dir()]
        manifest = read_json(first / "manifest.json")
        assert manifest["scenario"]["sessions"]["session_header"] == "X-Conversation"
        assert {s["session_turns"] for s in samples_of(first)} == {TURNS}

        # a trace replay from the same page: the trace's 40 requests at speed 2, its fidelity in the page
        page.get_by_role("button", name=re.compile("new", re.I)).click()
        before = mock_stats(mock)["requests"]
        _fill(page, _form(trace=str(trace), trace_speed="2"))
        replay = page.locator("#lb-replay")
        expect(replay).to_contain_text(f"replay of trace.jsonl (mooncake) at speed 2: {TRACE_REQUESTS} sent of "
                                       f"{TRACE_REQUESTS} scheduled, 0 dropped", timeout=120_000)
        expect(replay).to_contain_text("send lag behind schedule P50")
        expect(page.locator("#lb-turns")).to_have_count(0)  # not a sessions run
        second = [d for d in web["out"].iterdir() if d.is_dir() and d != first]
        assert len(second) == 1
        s = read_json(second[0] / "summary.json")
        assert (s["replay"]["sent"], s["replay"]["speed"]) == (TRACE_REQUESTS, 2.0)
        # the trace's own prompt sizes reached the target, one request each (plus the run's pre-flight)
        assert sorted(x["prompt_tokens"] for x in samples_of(second[0])) == [20 + i for i in range(TRACE_REQUESTS)]
        assert mock_stats(mock)["requests"] - before >= TRACE_REQUESTS
        browser.close()
