"""Timestamped request traces: read and validate one, then schedule it (scaled in time, sampled).

Formats (``format: auto`` picks by the file's extension):
    mooncake  JSONL, one request a line: ``timestamp`` (ms from the trace's start), ``input_length``,
              ``output_length``, ``hash_ids`` (the prompt's KV blocks of ``block_tokens`` tokens,
              512 in Mooncake's traces; requests whose lists share a prefix share that prompt prefix)
    azure     the Azure LLM inference trace CSV: ``TIMESTAMP`` (a date and time), ``ContextTokens``,
              ``GeneratedTokens``
    gateway   loadbench's own gateway request log (``results.request_log``): arrival times, prompt and
              output tokens, the virtual model and the request's metadata; a SQLite file, or a PostgreSQL
              log named by the environment variable that holds its URL (``trace: LOADBENCH_LOG_DSN``), so
              the URL and its password are never on a command line, in a profile or in a run's records

Every line is checked before any request is sent; a bad one raises ConfigError naming the file and
line, the field, the problem and the fix. Offsets are relative to the earliest request (a trace
need not be sorted; it is replayed in time order, ties in file order).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import os
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from loadbench.errors import ConfigError, InputError

TraceFormat = Literal["auto", "mooncake", "azure", "gateway"]
FORMATS: tuple[str, ...] = ("auto", "mooncake", "azure", "gateway")
MAX_TRACE_REQUESTS = 5_000_000  # a trace is read whole; beyond this, cut it first
MAX_TOKENS = 10_000_000
_URL = re.compile(r"^postgres(ql)?://", re.IGNORECASE)
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request of a trace, as the trace recorded it."""

    offset_ms: float  # from the trace's earliest request
    prompt_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()
    model: str | None = None  # gateway log: the virtual model asked for
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trace:
    path: str
    format: str
    requests: tuple[TraceRequest, ...]  # in time order

    @property
    def duration_ms(self) -> float:
        return self.requests[-1].offset_ms if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class Arrival:
    """One scheduled send: when (ns from the run start) and which trace request."""

    offset_ns: int
    index: int


def detect_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "mooncake"
    if suffix == ".csv":
        return "azure"
    if suffix in (".db", ".sqlite", ".sqlite3"):
        return "gateway"
    raise ConfigError(path, "arrival.format", f"cannot tell the trace format from the extension {suffix!r}",
                      "set arrival.format: mooncake (JSONL), azure (CSV) or gateway (request log)")


def is_database(arg: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether a trace argument names a database log: no such file, and a variable of that name is set."""
    env = os.environ if env is None else env
    return bool(_VAR.match(arg)) and not Path(arg).exists() and bool(env.get(arg))


def trace_location(arg: str, env: Mapping[str, str] | None = None) -> str:
    """How a plan records a trace: a file by its absolute path (workers and later runs may start elsewhere),
    a database log by its variable's name (never the URL it holds)."""
    return arg if is_database(arg, env) else str(Path(arg).resolve())


def _kind(path: str, fmt: str, env: Mapping[str, str]) -> str:
    """The format of the trace ``path`` names (ConfigError when it names nothing readable)."""
    if fmt not in FORMATS:
        raise ConfigError(path, "arrival.format", f"unknown trace format {fmt!r}", "one of " + ", ".join(FORMATS))
    if _URL.match(path):  # said without the URL itself: it may hold a password
        raise ConfigError("arrival.trace", "arrival.trace", "a database URL here would be written into the run's "
                          "plan and records, password included", "export it in a variable, e.g. "
                          "LOADBENCH_LOG_DSN=postgresql://..., and give the variable's name as the trace")
    if is_database(path, env):
        if not _URL.match(env[path]):
            raise ConfigError(path, "arrival.trace", f"environment variable {path} does not hold a postgresql:// URL",
                              f"export {path}=postgresql://host:5432/dbname (the gateway's request_log.dsn_env)")
        if fmt not in ("auto", "gateway"):
            raise ConfigError(path, "arrival.format", f"a database holds a gateway request log, not a {fmt} trace",
                              "set format: gateway (or auto)")
        return "gateway"
    if not Path(path).is_file():
        named = f", and no environment variable {path} is set" if _VAR.match(path) else ""
        raise ConfigError(path, "arrival.trace", "no such file" + named,
                          "give the path of a trace file, or the name of a variable holding a PostgreSQL "
                          "request log's URL")
    return detect_format(path) if fmt == "auto" else fmt


def read_trace(path: str, fmt: str = "auto", env: Mapping[str, str] | None = None) -> Trace:
    """The validated trace ``path`` names (ConfigError on the first bad line): a file, or the name of an
    environment variable (of ``env``, the process's own by default) holding a PostgreSQL log's URL."""
    env = os.environ if env is None else env
    kind = _kind(path, fmt, env)
    rows = _gateway(path, env) if kind == "gateway" else _READERS[kind](Path(path))
    found: list[tuple[float, int, TraceRequest]] = []
    for n, (at_ms, req) in enumerate(rows):
        if n >= MAX_TRACE_REQUESTS:
            raise ConfigError(path, "arrival.trace", f"more than {MAX_TRACE_REQUESTS} requests",
                              "cut the trace (or sample it into a new file) first")
        found.append((at_ms, n, req))
    if not found:
        raise ConfigError(path, "arrival.trace", "the trace holds no request", "give a trace with requests")
    found.sort(key=lambda r: (r[0], r[1]))
    t0 = found[0][0]
    ordered = tuple(TraceRequest(offset_ms=at - t0, prompt_tokens=r.prompt_tokens, output_tokens=r.output_tokens,
                                 hash_ids=r.hash_ids, model=r.model, metadata=r.metadata) for at, _, r in found)
    return Trace(path=str(path), format=kind, requests=ordered)


@functools.lru_cache(maxsize=4)
def _cached(path: str, fmt: str, mtime_ns: int, size: int) -> Trace:
    return read_trace(path, fmt)


def load_trace(path: str, fmt: str = "auto") -> Trace:
    """``read_trace``, read once per file version (the profile, the plan and each worker ask for it). A
    database log is read each time: it has no version to key on, and the workers cap their sends at the
    count the plan took (``schedule``'s ``max_count``), so rows written since change nothing."""
    try:
        st = Path(path).stat()
    except OSError:
        return read_trace(path, fmt)  # a database log, or says what is wrong with the path
    return _cached(str(Path(path).resolve()), fmt, st.st_mtime_ns, st.st_size)


def schedule(trace: Trace, *, speed: float, sample: float, seed: int, max_count: int | None = None,
             worker_index: int = 0, worker_count: int = 1) -> Iterator[Arrival]:
    """This worker's share of the trace's sends: offsets divided by ``speed``; each request kept with
    probability ``sample`` (seeded, the same draws in every worker); every ``worker_count``-th kept
    request from ``worker_index`` (the union over workers is the whole schedule)."""
    rng = random.Random(f"loadbench-trace-sample:{seed}")
    kept = 0
    for i, req in enumerate(trace.requests):
        if sample < 1.0 and rng.random() >= sample:
            continue
        if max_count is not None and kept >= max_count:
            return
        if kept % worker_count == worker_index:
            yield Arrival(offset_ns=round(req.offset_ms * 1_000_000 / speed), index=i)
        kept += 1


# ---- the formats ----


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def _count(path: Path, line: int, obj: Mapping[str, Any], name: str, *, minimum: int) -> int:
    value = obj.get(name)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)  # CSV cells are text
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(_where(path, line), name, f"must be a whole number, got {value!r}",
                          f"write {name} as an integer >= {minimum}")
    if not minimum <= value <= MAX_TOKENS:
        raise ConfigError(_where(path, line), name, f"must be between {minimum} and {MAX_TOKENS}, got {value}",
                          "fix or drop this line")
    return value


def _mooncake(path: Path) -> Iterator[tuple[float, TraceRequest]]:
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ConfigError(_where(path, line_no), "(line)", f"not JSON: {exc}",
                                  "one JSON object a line (Mooncake trace format)") from exc
            if not isinstance(obj, dict):
                raise ConfigError(_where(path, line_no), "(line)", "must be a JSON object",
                                  'e.g. {"timestamp": 0, "input_length": 812, "output_length": 40, '
                                  '"hash_ids": [0, 1]}')
            ts = obj.get("timestamp")
            if isinstance(ts, bool) or not isinstance(ts, int | float) or ts < 0:
                raise ConfigError(_where(path, line_no), "timestamp", f"must be milliseconds >= 0, got {ts!r}",
                                  "write the request's arrival time in ms from the trace's start")
            hash_ids = obj.get("hash_ids", [])
            if not isinstance(hash_ids, list) or not all(isinstance(h, int) and not isinstance(h, bool)
                                                         for h in hash_ids):
                raise ConfigError(_where(path, line_no), "hash_ids", f"must be a list of integers, got {hash_ids!r}",
                                  "list the prompt's block ids, or leave hash_ids out")
            yield float(ts), TraceRequest(
                offset_ms=float(ts), prompt_tokens=_count(path, line_no, obj, "input_length", minimum=1),
                output_tokens=_count(path, line_no, obj, "output_length", minimum=1), hash_ids=tuple(hash_ids))


def _azure_time_ms(path: Path, line: int, raw: object) -> float:
    text = str(raw or "").strip()
    head, _, frac = text.partition(".")
    try:
        # Azure writes 7 fractional digits; Python reads at most 6
        when = dt.datetime.fromisoformat(head + ("." + frac[:6] if frac else ""))
    except ValueError as exc:
        raise ConfigError(_where(path, line), "TIMESTAMP", f"not a date and time: {text!r}",
                          "write e.g. 2023-11-16 18:15:46.6805900") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp() * 1000.0


def _azure(path: Path) -> Iterator[tuple[float, TraceRequest]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("TIMESTAMP", "ContextTokens", "GeneratedTokens") if c not in (reader.fieldnames or ())]
        if missing:
            raise ConfigError(_where(path, 1), missing[0], "column missing from the header",
                              "the Azure LLM trace header is TIMESTAMP,ContextTokens,GeneratedTokens")
        for row in reader:
            line_no = reader.line_num
            at = _azure_time_ms(path, line_no, row.get("TIMESTAMP"))
            yield at, TraceRequest(offset_ms=at, prompt_tokens=_count(path, line_no, row, "ContextTokens", minimum=1),
                                   output_tokens=_count(path, line_no, row, "GeneratedTokens", minimum=1))


def _gateway(path: str, env: Mapping[str, str]) -> Iterator[tuple[float, TraceRequest]]:
    """Primary requests with a known prompt size; one the log holds no usage for (it failed before an
    answer) is left out, so the replay's arrivals are the answered ones. ``path``: a SQLite file, or the
    variable holding a PostgreSQL log's URL (its messages name the server, never the URL)."""
    from loadbench.results.request_log import RequestLog

    try:
        log = RequestLog.open(path, dict(env))
    except InputError as exc:
        raise ConfigError(path, "arrival.trace", str(exc),
                          "give a gateway request log: its SQLite file, or the variable holding its PostgreSQL URL"
                          ) from exc
    with log:
        arrivals = log.arrivals()
    for a in arrivals:
        if a.prompt_tokens is None or a.prompt_tokens < 1:
            continue
        yield float(a.ts_ms), TraceRequest(offset_ms=float(a.ts_ms), prompt_tokens=a.prompt_tokens,
                                           output_tokens=max(1, a.output_tokens or 1), model=a.model,
                                           metadata=a.metadata)


_READERS: dict[str, Callable[[Path], Iterator[tuple[float, TraceRequest]]]] = {
    "mooncake": _mooncake, "azure": _azure,  # gateway: _gateway, which reads a database too
}
