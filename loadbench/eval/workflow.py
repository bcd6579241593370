"""The workflow of ``loadbench eval``: validate, make the folder, start embedded mocks, call,
judge, aggregate, write the scorecard, and turn the verdict into an exit code. Ctrl-C stops it with
exit 130 (``loadbench.eval.interrupts``), keeping the calls scored so far.

Evaluation folder (``results/<UTC>-<name>/``): manifest.json (written once, before any request;
targets by name, URL and model, never a key), sessions.jsonl (one line per session), outputs.jsonl
(one scored call per line, appended as calls finish; in an agent suite one scored trial), traces.jsonl
(an agent suite's steps, one per line), judgements.jsonl, judge_cache.jsonl, scorecard.json / .md / .html.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import orjson

from loadbench import __version__
from loadbench.config.credentials import aws_credentials
from loadbench.errors import ConfigError, ExitCode, InputError, Interrupted
from loadbench.eval.aggregate import build_scorecard, latest, merge_judgements, score_call
from loadbench.eval.codeexec import score_code
from loadbench.eval.criteria import Score
from loadbench.eval.dataset import Case, Selection, parse_filter, select
from loadbench.eval.interrupts import interruptible
from loadbench.eval.records import CallRecord, Judgement
from loadbench.eval.runner import Endpoint, LateScorer
from loadbench.eval.scorecard import LatencyCard, Percentiles, ProbeResult, Scorecard
from loadbench.eval.suite import EvalTarget, Suite, load_suite
from loadbench.protocol.aws import AwsCredentials
from loadbench.protocol.bedrock import check_region
from loadbench.results import run_dir as rd

MANIFEST_SCHEMA = "loadbench.eval.manifest/1"


@dataclass(frozen=True, slots=True)
class EvalOptions:
    suite_path: Path
    target_urls: tuple[str, ...] = ()
    filter: str = ""
    sample: int | None = None
    seed: int | None = None
    failing_from: Path | None = None
    repeats: int | None = None
    append: Path | None = None
    latency_from: tuple[str, ...] = ()
    allow_code_execution: bool = False
    out_dir: Path = Path("results")
    name: str | None = None


def _pairs(values: Sequence[str], option: str, known: set[str]) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not value:
            raise ConfigError(option, v, "is not NAME=VALUE", f"e.g. {option} current=http://127.0.0.1:8001/v1")
        if key not in known:
            raise ConfigError(option, key, "is not a target of the suite", "one of " + ", ".join(sorted(known)))
        out[key] = value
    return out


def read_jsonl(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue  # a line cut by an interruption
    return out


def read_records(folder: Path) -> tuple[list[CallRecord], list[Judgement]]:
    calls = [CallRecord.from_json(o) for o in read_jsonl(folder / "outputs.jsonl")]
    judgements = [Judgement.from_json(o) for o in read_jsonl(folder / "judgements.jsonl")]
    return calls, judgements


def read_probes(folder: Path) -> dict[str, list[ProbeResult]]:
    """The latest session's result of each (target, probe)."""
    latest_rows: dict[tuple[str, str], ProbeResult] = {}
    for row in read_jsonl(folder / "probes.jsonl"):
        r = ProbeResult(str(row["probe"]), str(row["case_id"]), str(row["outcome"]), bool(row["passed"]),
                        str(row["detail"]))
        latest_rows[(str(row["target"]), r.probe)] = r
    out: dict[str, list[ProbeResult]] = {}
    for (target, _), r in latest_rows.items():
        out.setdefault(target, []).append(r)
    return out


def failing_ids(folder: Path, suite: Suite) -> frozenset[str]:
    calls, judgements = read_records(folder)
    if not calls:
        raise ConfigError(str(folder), "outputs.jsonl", "no scored calls in this folder",
                          "name a folder written by loadbench eval")
    by_id = {c.id: c for c in suite.cases}
    merged = merge_judgements(latest([r for r in calls if r.case_id in by_id]), judgements, suite.criteria)
    bad = {r.case_id for r in merged if not score_call(r, by_id[r.case_id], suite).accepted}
    return frozenset(bad)


def latency_card(run_dir: Path) -> LatencyCard:
    path = run_dir / "summary.json"
    try:
        metrics = orjson.loads(path.read_bytes())["metrics"]
    except (OSError, KeyError, orjson.JSONDecodeError):
        raise ConfigError(str(path), "metrics", "no load-test summary here",
                          "name a folder written by loadbench run") from None

    def pct(name: str) -> Percentiles:
        m = metrics.get(name) or {}
        return Percentiles(int(m.get("count", 0)), float(m.get("p50", "nan")), float(m.get("p95", "nan")),
                           float(m.get("p99", "nan")))

    return LatencyCard(str(run_dir), pct("ttft_ms"), pct("e2e_ms"))


def _aws(t: EvalTarget, path: str) -> tuple[str | None, AwsCredentials | None]:
    """A bedrock target's region and the standard AWS chain's credentials (environment, profile, role)."""
    if t.protocol != "bedrock":
        return None, None
    try:
        region = check_region(t.region or os.environ.get("AWS_REGION"))
    except InputError as exc:
        raise ConfigError(path, f"region of target {t.name!r}", str(exc), "add region: us-east-1 to the target") \
            from None
    credentials = aws_credentials()
    if credentials is None:
        raise ConfigError("environment", "AWS credentials", f"the standard AWS chain found none (needed by {t.name!r})",
                          "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) before running")
    return region, credentials


def _api_key(t: EvalTarget) -> str | None:
    if t.api_key_env is None:
        return None
    key = os.environ.get(t.api_key_env)
    if not key:
        raise ConfigError("environment", t.api_key_env, f"is not set (the API key of {t.name!r})",
                          f"export {t.api_key_env}=... before running")
    return key


def _mock_dataset(folder: Path, suite: Suite) -> Path:
    if len(suite.datasets) == 1:
        return Path(suite.datasets[0].path)
    path = folder / "mock-dataset.jsonl"
    path.write_bytes(b"".join(orjson.dumps(c.to_json()) + b"\n" for c in suite.cases))
    return path


def _mock_agent(folder: Path, suite: Suite) -> Path:
    """The tasks as an embedded mock plays them (``loadbench mock --agent``)."""
    from loadbench.eval.tasks import mock_plans

    assert suite.agent is not None
    path = folder / "mock-agent.json"
    path.write_bytes(orjson.dumps(mock_plans(list(suite.agent.tasks.values()))))
    return path


def _folder(opts: EvalOptions, suite: Suite, now: dt.datetime) -> Path:
    if opts.append is not None:
        if not (opts.append / "manifest.json").exists():
            raise ConfigError(str(opts.append), "manifest.json", "not an evaluation folder",
                              "name a folder written by loadbench eval")
        manifest = orjson.loads((opts.append / "manifest.json").read_bytes())
        if manifest.get("suite_name") != suite.name:
            raise ConfigError(str(opts.append), "suite_name", f"this folder evaluated {manifest.get('suite_name')!r}",
                              f"append only sessions of the same suite ({suite.name!r})")
        return opts.append
    return rd.new_run_dir(opts.out_dir, opts.name or suite.name, now)


def _late_scorer(suite: Suite, allow: bool) -> LateScorer | None:
    code = [c for c in suite.criteria if c.type == "code_tests"]
    if not code:
        return None
    if not allow:
        raise ConfigError(suite.path, f"criteria.{code[0].name}", "code_tests runs generated code",
                          "pass --allow-code-execution to allow it")

    def late(case: Case, text: str) -> dict[str, Score]:
        return {c.name: score_code(c, case.tests or "", text) for c in code if suite.applies_to(c, case)}

    return late


def run_eval(opts: EvalOptions) -> ExitCode:
    """The whole evaluation; its exit code (see ``exit_code``)."""
    with interruptible():
        return _run_eval(opts)


def _run_eval(opts: EvalOptions) -> ExitCode:
    suite = load_suite(opts.suite_path)
    names = {t.name for t in suite.targets}
    urls = _pairs(opts.target_urls, "--target", names)
    for name, url in urls.items():
        if not url.startswith(("http://", "https://")):
            raise ConfigError("--target", name, f"{url!r} is not an http(s) URL", "e.g. http://127.0.0.1:8000/v1")
    latency_dirs = _pairs(opts.latency_from, "--latency-from", names)
    latency = {n: latency_card(Path(d)) for n, d in latency_dirs.items()}
    seed = suite.seed if opts.seed is None else opts.seed
    only = failing_ids(opts.failing_from, suite) if opts.failing_from else None
    cases = select(suite.cases, Selection(parse_filter(opts.filter), opts.sample, seed, only))
    if not cases:
        raise ConfigError("--filter", opts.filter or "(selection)", "selects no case", "loosen the selection")
    from dataclasses import replace

    suite = replace(suite, seed=seed, repeats=opts.repeats or suite.repeats)
    late = _late_scorer(suite, opts.allow_code_execution)
    keys = {t.name: _api_key(t) for t in suite.targets}
    aws = {t.name: _aws(t, suite.path) for t in (*suite.targets, *(suite.judge.judges if suite.judge else ()))}
    judges = suite.judge.judges if suite.judge else ()
    judge_keys = {j.name: _api_key(j) for j in judges}
    now = dt.datetime.now(dt.UTC)
    folder = _folder(opts, suite, now)
    old_calls, old_judgements = read_records(folder)
    session = max((r.session for r in old_calls), default=-1) + 1
    repeats = {}
    for t in suite.targets:
        first = max((r.repeat for r in old_calls if r.target == t.name), default=-1) + 1
        repeats[t.name] = list(range(first, first + suite.repeats))
    if session == 0:
        _write_manifest(folder, suite, cases, urls, now)
    with (folder / "sessions.jsonl").open("ab") as fh:
        fh.write(orjson.dumps({"session": session, "started_utc": now.isoformat(timespec="seconds"),
                               "argv": sys.argv[1:], "repeats": repeats, "cases": len(cases)}) + b"\n")
    from loadbench.eval.runner import Endpoint

    with ExitStack() as stack:
        endpoints = [Endpoint(t.name, _url(t, urls, folder, suite, stack), t.model, keys[t.name],
                              suite.pricing.prices.get(t.price) if suite.pricing else None, t.protocol,
                              *aws[t.name]) for t in suite.targets]
        judge_eps = [Endpoint(j.name, _url(j, {}, folder, suite, stack), j.model, judge_keys[j.name],
                              suite.pricing.prices.get(j.price) if suite.pricing else None, j.protocol,
                              *aws[j.name]) for j in judges]
        print(f"evaluating {len(cases)} cases x {suite.repeats} repeats on {len(endpoints)} targets -> {folder}",
              file=sys.stderr, flush=True)
        try:
            asyncio.run(_calls_and_judge(suite, cases, endpoints, judge_eps, repeats, session, folder, late,
                                         old_calls, old_judgements))
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; the calls scored so far are in {folder / 'outputs.jsonl'}") from None
    calls, judgements = read_records(folder)
    scorecard = build_scorecard(suite, cases, calls, judgements, created_utc=now.isoformat(timespec="seconds"),
                                today=now.date(), latency_from=latency, probes=read_probes(folder))
    write_scorecard(folder, scorecard)
    from loadbench.eval.render import summary

    print(summary(scorecard), flush=True)
    print(f"scorecard: {folder / 'scorecard.md'}", file=sys.stderr)
    return exit_code(scorecard)


async def _calls_and_judge(suite: Suite, cases: Sequence[Case], endpoints: list[Endpoint],
                           judge_eps: list[Endpoint], repeats: dict[str, list[int]], session: int, folder: Path,
                           late: LateScorer | None,
                           old_calls: list[CallRecord], old_judgements: list[Judgement]) -> None:
    from loadbench.eval.judge import JudgeCache, judge_all, judged_key
    from loadbench.eval.runner import OutputsFile, run_calls

    out = OutputsFile(folder / "outputs.jsonl")
    traces = OutputsFile(folder / "traces.jsonl") if suite.agent is not None else None
    try:
        new = await run_calls(endpoints, suite, cases, repeats, session, out, late, traces)
    finally:
        out.close()
        if traces is not None:
            traces.close()
    if suite.probes:
        from loadbench.eval.runner import run_probes

        windows = {t.name: t.context_window for t in suite.targets}
        with (folder / "probes.jsonl").open("ab") as fh:
            for target, result in await run_probes(endpoints, suite, windows):
                fh.write(orjson.dumps({"target": target, "session": session, **dataclasses.asdict(result)}) + b"\n")
    if suite.judge is None or not judge_eps:
        return
    cache = JudgeCache(folder / "judge_cache.jsonl")
    jout = OutputsFile(folder / "judgements.jsonl")
    try:
        done = {judged_key(j) for j in old_judgements}
        await judge_all(suite, cases, latest(old_calls + new), judge_eps, cache, jout, done)
    finally:
        jout.close()
        cache.close()


def _url(t: EvalTarget, urls: dict[str, str], folder: Path, suite: Suite, stack: ExitStack) -> str:
    if t.name in urls:
        return urls[t.name]
    if t.mock is None:
        assert t.url is not None
        return t.url
    from loadbench.procs import start_server

    args = ["mock", "--port", "0", "--model", t.model, *t.mock.args]
    if suite.agent is not None and "--judge" not in t.mock.args:
        args += ["--agent", str(_mock_agent(folder, suite))]
    elif "--judge" not in t.mock.args:
        args += ["--answers", str(_mock_dataset(folder, suite))]
    server = start_server(args)
    stack.callback(server.stop)
    return server.base_url


def _write_manifest(folder: Path, suite: Suite, cases: Sequence[Case], urls: dict[str, str], now: dt.datetime) -> None:
    pricing = suite.pricing
    manifest = {
        "schema": MANIFEST_SCHEMA, "version": __version__, "created_utc": now.isoformat(timespec="seconds"),
        "suite": suite.path, "suite_name": suite.name, "dataset_hash": suite.dataset_hash,
        "datasets": [{"path": d.path, "sha256": d.sha256, "cases": len(d.cases)} for d in suite.datasets],
        "cases": [c.id for c in cases], "seed": suite.seed, "repeats": suite.repeats,
        "targets": [{"name": t.name, "model": t.model, "url": urls.get(t.name, t.url or "embedded mock"),
                     "price": t.price} for t in suite.targets],
        "pricing": None if pricing is None else {
            "path": pricing.path, "currency": pricing.currency,
            "sources": sorted({f"{p.source} ({p.as_of})" for p in pricing.prices.values()})},
    }
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


def write_scorecard(folder: Path, scorecard: Scorecard) -> None:
    from loadbench.eval.render import cost_quality_png, html_page, markdown

    tmp = folder / "scorecard.json.tmp"
    tmp.write_bytes(orjson.dumps(scorecard.to_json(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    tmp.replace(folder / "scorecard.json")
    (folder / "scorecard.md").write_text(markdown(scorecard), encoding="utf-8")
    (folder / "scorecard.html").write_text(html_page(scorecard, cost_quality_png(scorecard)), encoding="utf-8")


def exit_code(scorecard: Scorecard) -> ExitCode:
    """One rule: a failed regression case (of a candidate, when there is an incumbent: it is what
    runs today) or a REJECT -> 1; INCONCLUSIVE -> 3; else 0."""
    incumbent = scorecard.decision.incumbent if scorecard.decision else None
    if any(target != incumbent for target, _ in scorecard.regressions_failed):
        return ExitCode.GATE_FAILED
    if scorecard.decision is None:
        return ExitCode.OK
    return {"ACCEPT": ExitCode.OK, "REJECT": ExitCode.GATE_FAILED}.get(scorecard.decision.verdict,
                                                                       ExitCode.INVALID_RUN)
