"""`loadbench run --web` driven in headless Chromium: Locust's own page with loadbench's form fields,
live charts from the HDR intervals, errors in the page before any load, the report link, a second
run from the same page, and the live P50 TTFT (page, Prometheus) against the final summary."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadbench.launcher import free_port
from tests.conftest import REPO, mock_stats, read_json

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
MOCK_TTFT_MS = 80.0
HDR_REL = 1e-3  # 3 significant digits


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bytes(resp.read())


@contextlib.contextmanager
def _web(tmp_path: Path, target_url: str, model: str, *extra: str, env: dict[str, str] | None = None
         ) -> Iterator[dict]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install the system browser with `apt-get install -y chromium`")
    port, prom = free_port(), free_port()
    out = tmp_path / "results"
    log = (tmp_path / "web.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadbench", "run", "--web", "--web-port", str(port), "--prometheus-port", str(prom),
         "--target", target_url, "--model", model, "--out", str(out), "--no-calibrate", "--workers", "1",
         *extra],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if b'"workers":1' in _get(url + "/loadbench/live.json"):
                break
        except urllib.error.HTTPError:
            break  # up, behind basic auth
        except OSError:
            pass
        time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("the web UI did not come up: " + (tmp_path / "web.log").read_text()[-2000:])
    try:
        yield {"url": url, "prom": f"http://127.0.0.1:{prom}/metrics", "out": out, "tmp": tmp_path}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def web(tmp_path: Path, mock_factory) -> Iterator[dict]:
    mock = mock_factory("--ttft-ms", str(int(MOCK_TTFT_MS)), "--itl-ms", "10")
    with _web(tmp_path, mock.base_url, "mock-model") as w:
        yield {**w, "mock": mock}


def _prom_run_p50_ms(url: str) -> float:
    text = _get(url).decode()
    for fam in text_string_to_metric_families(text):
        if fam.name == "loadbench_ttft_quantile_seconds":
            for s in fam.samples:
                if s.labels == {"quantile": "0.5", "window": "run"}:
                    return float(s.value) * 1000.0
    raise AssertionError("no run P50 TTFT on the Prometheus port:\n" + text[:2000])


def _start(page, users: str, run_time: str, scenario: str) -> None:
    page.fill("input[name=userCount]", users)
    page.fill("input[name=spawnRate]", "20")
    if not page.is_visible("input[name=runTime]"):
        page.click("text=Advanced options")
    page.fill("input[name=runTime]", run_time)
    if not page.is_visible("input[name=scenario]"):
        page.click("text=Custom parameters")
    page.fill("input[name=scenario]", scenario)
    page.click("button[type=submit]")


def test_web_run_from_the_page(web: dict) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(web["url"])
        page.wait_for_selector("form")

        # invalid fields: the CLI's message in the page, and nothing reaches the target
        _start(page, "0", "20s", "scenarios/default.yaml")
        expect(page.get_by_text("--users: 0 is not in the range x>=1").first).to_be_visible(timeout=10_000)
        _start(page, "20", "20s", "scenarios/no-such.yaml")
        expect(page.get_by_text("scenarios/no-such.yaml: (file): file not found").first).to_be_visible(timeout=10_000)
        assert mock_stats(web["mock"])["requests"] == 0
        assert not web["out"].exists() or not any(web["out"].iterdir())

        # a run: 20 users, a scenario, live TTFT near the mock's setting from the HDR intervals
        _start(page, "20", "20s", "scenarios/chat-mix.yaml")
        status = page.locator("#lb-status")
        deadline = time.monotonic() + 60
        live_ms = None
        while time.monotonic() < deadline:
            raw = status.get_attribute("data-last-ttft-p50-ms")
            if raw:
                live_ms = float(raw)
                break
            time.sleep(0.5)
        assert live_ms is not None, page.inner_text("#loadbench-panel")
        assert MOCK_TTFT_MS <= live_ms < MOCK_TTFT_MS * 1.5, live_ms
        assert page.locator("#lb-chart-ttft path").count() >= 1  # the P50/P90/P99 lines are drawn
        # the panel lives in Locust's loadbench tab: not under the statistics, at once under the tab's table
        panel = page.locator("#loadbench-panel")
        expect(panel).to_be_hidden()
        page.get_by_role("tab", name="loadbench").click()
        expect(panel).to_be_visible(timeout=10_000)
        expect(page.locator("main #loadbench-panel #lb-chart-ttft")).to_be_visible()
        table = page.locator("main table").first.bounding_box()
        box = panel.bounding_box()
        assert table is not None and box is not None
        assert 0 <= box["y"] - (table["y"] + table["height"]) < 100, (table, box)
        page.get_by_role("tab", name="charts").click()
        expect(panel).to_be_hidden()
        page.get_by_role("tab", name="loadbench").click()
        expect(panel).to_be_visible()
        page.screenshot(path=str(web["tmp"] / "web-run.png"), full_page=True)
        # Locust's own tab extension: the loadbench tab's table of HDR figures (in a second page, so
        # the first keeps Locust's statistics tab)
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        tab.goto(web["url"] + "/?tab=loadbench")
        tab.get_by_role("tab", name="loadbench").click()
        expect(tab.get_by_role("cell", name="ttft (ms)")).to_be_visible(timeout=10_000)
        tab.close()

        # stop from Locust's own button; the page links to the run's report
        page.get_by_role("button", name=re.compile("stop", re.I)).click()
        report = page.locator("#lb-report")
        expect(report).to_be_visible(timeout=120_000)
        assert b"<html" in _get(web["url"] + "/" + report.get_attribute("href").lstrip("./"))[:2000].lower()

        # the live P50 on the page and on the Prometheus port against the summary of the same requests
        page_ms = float(status.get_attribute("data-run-ttft-p50-ms") or "nan")
        prom_ms = _prom_run_p50_ms(web["prom"])
        (run_dir,) = [d for d in web["out"].iterdir() if d.is_dir()]
        summary_ms = read_json(run_dir / "summary.json")["metrics"]["ttft_ms"]["p50"]
        assert page_ms == pytest.approx(summary_ms, rel=HDR_REL, abs=0.001)
        assert prom_ms == pytest.approx(summary_ms, rel=HDR_REL, abs=0.001)
        assert read_json(run_dir / "status.json")["stop_reason"] == "stopped from the web page"
        # stopped like the plan's end: in-flight requests finished and were measured, none cut
        assert "interrupted" not in read_json(run_dir / "summary.json")["requests"]["by_outcome"]

        # a second run from the same page gets its own folder and report
        page.get_by_role("button", name=re.compile("new", re.I)).click()
        _start(page, "5", "4s", "scenarios/default.yaml")
        expect(page.locator("#lb-runs .lb-report-link")).to_have_count(2, timeout=120_000)
        assert len([d for d in web["out"].iterdir() if d.is_dir()]) == 2
        browser.close()


def test_basic_auth_guards_the_page_and_its_routes(tmp_path: Path, mock_factory) -> None:
    with _web(tmp_path, mock_factory().base_url, "mock-model", "--web-auth-env", "LB_TEST_WEB_AUTH",
              env={"LB_TEST_WEB_AUTH": "alice:s3cret"}) as w:
        for path in ("/", "/loadbench/live.json", "/swarm"):
            with pytest.raises(urllib.error.HTTPError) as err:
                _get(w["url"] + path)
            assert err.value.code == 401
        req = urllib.request.Request(w["url"] + "/loadbench/live.json", headers={
            "Authorization": "Basic " + base64.b64encode(b"alice:s3cret").decode()})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert b'"expected_workers":1' in resp.read()
        assert b"s3cret" not in (tmp_path / "web.log").read_bytes()


def test_cache_hit_and_miss_latency_through_a_caching_gateway(tmp_path: Path, mock_factory) -> None:
    """The panel's cache chart: TTFT by the gateway's cache state, from the start button's own route."""
    import yaml

    from loadbench.procs import running_server

    mock = mock_factory("--ttft-ms", "150", "--itl-ms", "2")
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(yaml.safe_dump({"targets": [{"name": "m0", "url": mock.base_url, "model": "mock-model"}],
                                   "virtual_models": [{"name": "chat", "targets": [{"target": "m0"}]}],
                                   "cache": {"mode": "semantic"}}))
    with running_server(["gateway", "--config", str(cfg), "--port", "0"]) as gw, \
            _web(tmp_path, gw.base_url, "chat", "--name", "cache-mix") as w:
        form = {"user_count": "8", "spawn_rate": "8", "run_time": "8s", "host": gw.base_url, "model": "chat",
                "scenario": str(REPO / "scenarios/cache-mix.yaml"), "stream": "true"}
        req = urllib.request.Request(w["url"] + "/swarm", data=urllib.parse.urlencode(form).encode())
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert b'"success":true' in resp.read().replace(b" ", b"")
        deadline = time.monotonic() + 90
        live: dict = {}
        while time.monotonic() < deadline:
            live = json.loads(_get(w["url"] + "/loadbench/live.json"))
            if live["runs"] and live["runs"][-1]["state"] in ("done", "failed"):
                break
            time.sleep(1)
        assert live["runs"][-1]["state"] == "done", live["runs"]
        cache = live["live"]["run_cache_ttft"]
        assert {"hit-exact", "miss"} <= set(cache), cache
        assert cache["miss"]["p50_ms"] >= 150
        assert cache["hit-exact"]["p50_ms"] < 150 / 3
        (run_dir,) = [d for d in w["out"].iterdir() if d.is_dir()]
        assert run_dir.name.endswith("-cache-mix"), run_dir.name  # --name, not the profile's
        by_state = read_json(run_dir / "summary.json")["breakdowns"]["cache"]
        assert {k: v["requests"] for k, v in by_state.items()} == {k: q["count"] for k, q in cache.items()}
