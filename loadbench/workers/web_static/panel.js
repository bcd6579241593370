// loadbench panel in Locust's loadbench tab: live charts from the master's merged HDR interval histograms
// (/loadbench/live.json).
(function () {
  "use strict";
  const TAB_KEY = "loadbench";  // the title of the tab loadbench.workers.web adds to Locust's tab bar
  const COLORS = ["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b"];
  const CHARTS = [
    { id: "ttft", title: "TTFT (ms)", series: q("ttft") },
    { id: "itl", title: "ITL (ms)", series: q("itl") },
    { id: "tpot", title: "TPOT (ms)", series: q("tpot") },
    { id: "tokens", title: "output tokens/s", series: [["tokens/s", (p) => p.output_tokens_per_s]] },
    { id: "rps", title: "requests/s (ok)", series: [["req/s", (p) => p.requests_per_s]] },
    { id: "errors", title: "errors by outcome (per interval)", series: null },
    { id: "generator", title: "generator: busiest worker CPU (%) and loop lag P99 (ms)",
      series: [["cpu %", (p) => p.cpu_percent_max], ["loop lag p99 ms", (p) => p.loop_lag_p99_ms]] },
    { id: "cache", title: "TTFT P50 by cache state (ms, through a caching gateway)", series: null },
  ];
  function q(m) {
    return ["p50", "p90", "p99"].map((k) => [k, (p) => p.latency[m][k + "_ms"]]);
  }
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const SVG = "http://www.w3.org/2000/svg";
  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }
  function fmt(v) { return v === null || v === undefined ? "–" : (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2)); }

  function draw(fig, points, series) {
    const svg = fig.querySelector("svg");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = 400, H = 150, L = 44, B = 18;
    const xs = points.map((p) => p.t_s);
    let ymax = 0;
    for (const [, f] of series) for (const p of points) { const v = f(p); if (v !== null && v !== undefined) ymax = Math.max(ymax, v); }
    ymax = ymax > 0 ? ymax * 1.1 : 1;
    const x0 = xs.length ? xs[0] : 0, x1 = xs.length > 1 ? xs[xs.length - 1] : x0 + 1;
    const X = (t) => L + ((t - x0) / (x1 - x0 || 1)) * (W - L - 6);
    const Y = (v) => H - B - (v / ymax) * (H - B - 8);
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.appendChild(svgEl("line", { x1: L, y1: H - B, x2: W - 6, y2: H - B, stroke: "#888" }));
    svg.appendChild(svgEl("line", { x1: L, y1: 8, x2: L, y2: H - B, stroke: "#888" }));
    for (const frac of [0, 0.5, 1]) {
      const t = svgEl("text", { x: L - 4, y: Y(ymax / 1.1 * frac) + 4, "text-anchor": "end", "font-size": 10 });
      t.textContent = fmt(ymax / 1.1 * frac); svg.appendChild(t);
    }
    const tl = svgEl("text", { x: W - 6, y: H - 4, "text-anchor": "end", "font-size": 10 });
    tl.textContent = `t = ${fmt(x1)} s`; svg.appendChild(tl);
    const legend = fig.querySelector(".lb-legend");
    legend.textContent = "";
    series.forEach(([name, f], i) => {
      const d = points.map((p) => [p.t_s, f(p)]).filter(([, v]) => v !== null && v !== undefined)
        .map(([t, v], j) => `${j ? "L" : "M"}${X(t).toFixed(1)},${Y(v).toFixed(1)}`).join(" ");
      if (d) svg.appendChild(svgEl("path", { d, fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 1.6 }));
      if (points.length < 30) {  // a line needs two points: mark each one so the first interval shows
        for (const p of points) {
          const v = f(p);
          if (v !== null && v !== undefined) {
            svg.appendChild(svgEl("circle", { cx: X(p.t_s).toFixed(1), cy: Y(v).toFixed(1), r: 2.2, fill: COLORS[i % COLORS.length] }));
          }
        }
      }
      const last = points.length ? f(points[points.length - 1]) : null;
      const s = el("span", { style: `color:${COLORS[i % COLORS.length]}` }, `${name} ${fmt(last)}`);
      legend.appendChild(s);
    });
  }

  function build() {
    const panel = el("section", { id: "loadbench-panel" });
    panel.appendChild(el("h2", {}, "loadbench: live LLM metrics (HDR interval histograms)"));
    panel.appendChild(el("div", { class: "lb-status", id: "lb-status" }, "waiting for data…"));
    panel.appendChild(el("div", { id: "lb-message" }));
    panel.appendChild(el("div", { id: "lb-saturation" }));
    const run = el("div", { id: "lb-run" });
    panel.appendChild(run);
    panel.appendChild(el("div", { id: "lb-results" }));
    const grid = el("div", { class: "lb-grid" });
    for (const ch of CHARTS) {
      const fig = el("figure", { id: `lb-chart-${ch.id}` });
      fig.appendChild(el("figcaption", {}, ch.title));
      fig.appendChild(el("div", { class: "lb-legend" }));
      fig.appendChild(svgEl("svg", {}));
      grid.appendChild(fig);
    }
    panel.appendChild(grid);
    panel.appendChild(el("div", { id: "lb-runs" }));
    panel.hidden = true;
    document.body.appendChild(panel);
    return panel;
  }

  // Locust's extended tab renders only a table; the panel joins it under that table, in the tab's
  // own content box, and shows only while the loadbench tab is selected (before the first start
  // Locust shows its form and no tabs: the form's own error box carries a start's error then).
  // React re-renders that box freely, so every DOM change re-checks the place: a no-op when the
  // panel is already where it belongs, which also keeps the observer from feeding itself.
  function selectedTab() {
    const tab = document.querySelector('[role="tablist"] [role="tab"][aria-selected="true"]');
    return tab ? tab.textContent.trim().toLowerCase() : null;
  }
  function place(panel) {
    const tabs = document.querySelector('[role="tablist"]');
    const box = tabs ? tabs.closest("main > div") : null;
    const show = box !== null && selectedTab() === TAB_KEY;
    if (show && (panel.parentElement !== box || box.lastElementChild !== panel)) box.appendChild(panel);
    if (panel.hidden === show) panel.hidden = !show;
  }

  function runTable(runs) {
    const box = document.getElementById("lb-runs");
    box.textContent = "";
    if (!runs.length) return;
    const t = el("table");
    const head = el("tr");
    for (const h of ["run", "state", "stop reason", "exit", "report"]) head.appendChild(el("th", {}, h));
    t.appendChild(head);
    for (const r of runs.slice().reverse()) {
      const tr = el("tr");
      tr.appendChild(el("td", {}, r.run_id));
      tr.appendChild(el("td", {}, r.state + (r.error ? `: ${r.error}` : "")));
      tr.appendChild(el("td", {}, r.stop_reason || ""));
      tr.appendChild(el("td", {}, r.exit_code === null ? "" : String(r.exit_code)));
      const td = el("td");
      if (r.report) td.appendChild(el("a", { href: r.report, target: "_blank", class: "lb-report-link" }, "report.html"));
      tr.appendChild(td);
      t.appendChild(tr);
    }
    box.appendChild(t);
  }

  // a finished run's summary beyond the charts: sessions by turn index, a trace replay's fidelity
  function results(r) {
    const box = document.getElementById("lb-results");
    box.textContent = "";
    if (!r) return;
    if (r.sessions) box.appendChild(el("p", { id: "lb-sessions" }, r.sessions));
    if (r.turn_rows.length) {
      const t = el("table", { id: "lb-turns" });
      const head = el("tr");
      for (const h of r.turn_headers) head.appendChild(el("th", {}, h));
      t.appendChild(head);
      for (const row of r.turn_rows) {
        const tr = el("tr");
        for (const c of row) tr.appendChild(el("td", {}, c));
        t.appendChild(tr);
      }
      box.appendChild(t);
    }
    if (r.replay) box.appendChild(el("p", { id: "lb-replay" }, r.replay));
  }

  function render(data) {
    const runs = data.runs || [];
    const cur = runs.length ? runs[runs.length - 1] : null;
    const live = data.live;
    const status = document.getElementById("lb-status");
    const runTtft = live ? live.run.ttft : null;
    status.textContent = `workers ${data.workers}/${data.expected_workers} · ` +
      (cur ? `run ${cur.run_id}: ${cur.state}` : "no run yet: fill in the form and start") +
      (runTtft && runTtft.count ? ` · run so far: TTFT P50 ${fmt(runTtft.p50_ms)} ms, P99 ${fmt(runTtft.p99_ms)} ms` : "");
    const ttftP50 = runTtft && runTtft.count ? String(runTtft.p50_ms) : "";
    status.setAttribute("data-run-ttft-p50-ms", ttftP50);
    const last = live && live.points.length ? live.points[live.points.length - 1] : null;
    status.setAttribute("data-last-ttft-p50-ms", last && last.latency.ttft.p50_ms !== null ? String(last.latency.ttft.p50_ms) : "");
    const m = document.getElementById("lb-message");
    m.className = data.message ? "lb-error" : "";
    m.textContent = data.message || "";
    const sat = document.getElementById("lb-saturation");
    const reasons = live ? live.saturation : [];
    sat.className = reasons.length ? "lb-warning" : "";
    sat.textContent = reasons.length ? "warning: the load generator is saturated: " + reasons.join("; ") : "";
    const runBox = document.getElementById("lb-run");
    runBox.textContent = "";
    if (cur && cur.report) {
      runBox.appendChild(el("span", {}, `run ${cur.run_id} finished (${cur.stop_reason || ""}): `));
      runBox.appendChild(el("a", { href: cur.report, target: "_blank", id: "lb-report" }, "open its report.html"));
    }
    results(cur && cur.results);
    runTable(runs);
    const points = live ? live.points : [];
    const outcomes = new Set(), states = new Set();
    for (const p of points) {
      for (const k of Object.keys(p.errors)) outcomes.add(k);
      for (const k of Object.keys(p.cache_ttft)) states.add(k);
    }
    const dynamic = {
      errors: [...outcomes].sort().map((k) => [k, (p) => p.errors[k] || 0]),
      cache: [...states].sort().map((k) => [k, (p) => (p.cache_ttft[k] ? p.cache_ttft[k].p50_ms : null)]),
    };
    for (const ch of CHARTS) {
      const series = ch.series || dynamic[ch.id];
      draw(document.getElementById(`lb-chart-${ch.id}`), points, series);
    }
  }

  async function poll() {
    try {
      const r = await fetch("./loadbench/live.json", { cache: "no-store" });
      if (r.ok) render(await r.json());
    } catch (e) { /* the master is gone or busy: keep the last picture */ }
    setTimeout(poll, 1000);
  }
  const panel = build();
  new MutationObserver(() => place(panel)).observe(document.body, { childList: true, subtree: true,
    attributes: true, attributeFilter: ["aria-selected"] });
  place(panel);
  poll();
})();
