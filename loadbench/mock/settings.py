"""The mock's settings: one slotted dataclass, its validation, and live updates.

``problems()`` is the single source of the limits; the CLI and ``POST /mock/config`` both use it.
Only the fields in ``LIVE_FIELDS`` may change while the server runs (they apply to requests
that arrive afterwards); the rest fix the shape of the process (address, workers, queue size).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from loadbench.errors import ConfigError
from loadbench.mock.faults import FAULTS
from loadbench.protocol.registry import names


@dataclass(slots=True, frozen=True)
class MockSettings:
    host: str = "127.0.0.1"
    port: int = 8001  # 0 picks a free port
    model: str = "mock-model"
    ttft_ms: float = 50.0
    itl_ms: float = 10.0
    jitter_ms: float = 0.0  # uniform +-jitter on every content chunk's deadline
    output_tokens: int = 128  # when the request sets no max_tokens / max_completion_tokens
    # a request asking for more is refused with a 400: a stream's schedule and a whole answer's text
    # are built per request, so an unbounded max_tokens would block the loop and exhaust memory
    max_output_tokens: int = 32768
    tokens_per_chunk: int = 1
    error_rate: float = 0.0
    error_status: int = 503
    max_concurrency: int = 0  # 0 = unlimited; above it requests wait FIFO
    seed: int = 0
    workers: int = 1
    no_usage: bool = False
    embedding_dim: int = 64
    fault: str = ""  # "" = none; else one of faults.FAULTS
    fault_rate: float = 1.0  # fraction of generation requests answered with ``fault`` (seeded)
    fault_hold_s: float = 30.0  # longest stall of a stalling fault
    fault_retry_after_s: int = 1  # Retry-After of the 429-retry-after fault
    # Answers with known quality (see answers.py, judge.py); "" / 0 = off.
    answers: str = ""  # dataset JSONL whose cases the mock answers
    accuracy: float = 1.0
    format_error_rate: float = 0.0
    consistency: float = 1.0
    verbosity: int = 0  # hidden reasoning tokens per answer
    context_window: int = 0
    overflow: str = "error"  # error | truncate
    answer_signature: str = ""
    judge: bool = False
    judge_position_bias: float = 0.0
    judge_name_bias: str = ""
    # The mock as an agent of known competence (agent.py): tasks to play, "" = off; competence = accuracy.
    agent: str = ""
    agent_mistakes: str = "wrong_tool,wrong_argument,stop_early,malformed"
    # The server model (servermodel.py, docs/mock.md); 0 = that term off.
    prefill_ms_per_token: float = 0.0  # TTFT grows by this per prompt token the prefix cache missed
    prefix_cache_blocks: int = 0  # LRU capacity in blocks, shared by the process's requests
    prefix_block_tokens: int = 16  # tokens per cached block
    decode_slowdown: float = 0.0  # ITL x (1 + this x (streams decoding - 1))
    # protocols (see protocols.py): the dialects answered, each on its own routes, and their knobs
    protocols: tuple[str, ...] = ("openai",)
    pings: int = 0  # keepalive events (Anthropic's ping) before the first token
    thinking_tokens: int = 0  # a thinking block of this many tokens before the answer
    filter_every: int = 0  # a content-filter frame (Azure) after every N chunks; 0 = none
    stream_error_after: int = 0  # chunks before an error event ends the stream; 0 = never
    stream_error_status: int = 529  # the status that error event stands for (429: throttling)


# field -> (type, minimum, maximum or None)
_LIMITS: dict[str, tuple[type, float, float | None]] = {
    "port": (int, 0, 65535),
    "accuracy": (float, 0.0, 1.0),
    "format_error_rate": (float, 0.0, 1.0),
    "consistency": (float, 0.0, 1.0),
    "verbosity": (int, 0, 10_000_000),
    "context_window": (int, 0, None),
    "judge_position_bias": (float, 0.0, 1.0),
    "ttft_ms": (float, 0.0, 3_600_000.0),
    "itl_ms": (float, 0.0, 3_600_000.0),
    "jitter_ms": (float, 0.0, 3_600_000.0),
    "output_tokens": (int, 1, 10_000_000),
    "max_output_tokens": (int, 1, 10_000_000),
    "tokens_per_chunk": (int, 1, 1_000_000),
    "error_rate": (float, 0.0, 1.0),
    "error_status": (int, 400, 599),
    "max_concurrency": (int, 0, None),
    "workers": (int, 1, 256),
    "embedding_dim": (int, 1, 65536),
    "fault_rate": (float, 0.0, 1.0),
    "fault_hold_s": (float, 0.0, 3600.0),
    "fault_retry_after_s": (int, 0, 3600),
    "prefill_ms_per_token": (float, 0.0, 60_000.0),
    "prefix_cache_blocks": (int, 0, 100_000_000),
    "prefix_block_tokens": (int, 1, 1_000_000),
    "decode_slowdown": (float, 0.0, 1000.0),
    "pings": (int, 0, 1000),
    "thinking_tokens": (int, 0, 10_000_000),
    "filter_every": (int, 0, 1_000_000),
    "stream_error_after": (int, 0, 10_000_000),
    "stream_error_status": (int, 400, 599),
}

LIVE_FIELDS: frozenset[str] = frozenset(
    {"ttft_ms", "itl_ms", "jitter_ms", "output_tokens", "tokens_per_chunk", "error_rate",
     "error_status", "no_usage", "fault", "fault_rate", "pings", "thinking_tokens", "filter_every",
     "stream_error_after", "stream_error_status"}
)


def limits(name: str) -> tuple[float, float | None]:
    """(minimum, maximum) of a numeric field, for the CLI's click ranges."""
    _, lo, hi = _LIMITS[name]
    return lo, hi


def problems(settings: MockSettings) -> list[tuple[str, str]]:
    """Every (field, problem) that makes these settings invalid; empty when valid."""
    found: list[tuple[str, str]] = []
    for name, (kind, lo, hi) in _LIMITS.items():
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            found.append((name, f"must be a number, got {value!r}"))
        elif kind is int and not isinstance(value, int):
            found.append((name, f"must be an integer, got {value!r}"))
        elif value < lo or (hi is not None and value > hi):
            bound = f"between {lo:g} and {hi:g}" if hi is not None else f">= {lo:g}"
            found.append((name, f"must be {bound}, got {value!r}"))
    if not settings.model:
        found.append(("model", "must not be empty"))
    if not settings.host:
        found.append(("host", "must not be empty"))
    if settings.output_tokens > settings.max_output_tokens:
        found.append(("output_tokens", f"must be <= max_output_tokens ({settings.max_output_tokens}), "
                                       f"got {settings.output_tokens}"))
    if settings.fault and settings.fault not in FAULTS:
        found.append(("fault", f"unknown fault {settings.fault!r}; one of: {', '.join(FAULTS)}"))
    from loadbench.mock.agent import MISTAKES  # the agent's own module names its mistakes

    kinds = [k for k in settings.agent_mistakes.split(",") if k]
    if not kinds or any(k not in MISTAKES for k in kinds):
        found.append(("agent_mistakes", f"must be a comma-separated list of {', '.join(MISTAKES)}, "
                                        f"got {settings.agent_mistakes!r}"))
    unknown = [p for p in settings.protocols if p not in names()]
    if unknown or not settings.protocols:
        found.append(("protocol", f"unknown protocol {unknown[0]!r}; known: {', '.join(names())}" if unknown
                      else "name at least one"))
    if settings.overflow not in ("error", "truncate"):
        found.append(("overflow", f"must be error or truncate, got {settings.overflow!r}"))
    return found


def live_view(settings: MockSettings) -> dict[str, Any]:
    """What ``GET /mock/config`` returns: every setting, live ones marked."""
    data = dataclasses.asdict(settings)
    data["live_fields"] = sorted(LIVE_FIELDS)
    return data


def with_updates(settings: MockSettings, updates: object) -> MockSettings:
    """Apply a ``POST /mock/config`` body. Raises ConfigError naming the bad field."""
    where = "POST /mock/config"
    if not isinstance(updates, dict):
        raise ConfigError(where, "(body)", "must be a JSON object", 'e.g. {"ttft_ms": 200}')
    changes: dict[str, Any] = {}
    for name, value in updates.items():
        if name not in LIVE_FIELDS:
            raise ConfigError(where, str(name), "is not a live setting",
                              "one of " + ", ".join(sorted(LIVE_FIELDS)))
        if name == "no_usage":
            if not isinstance(value, bool):
                raise ConfigError(where, name, f"must be true or false, got {value!r}")
        elif name == "fault":
            if not isinstance(value, str):
                raise ConfigError(where, name, f"must be a string, got {value!r}", "one of " + ", ".join(FAULTS))
        elif _LIMITS[name][0] is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # JSON 200 means 200.0 ms
        changes[name] = value
    updated = dataclasses.replace(settings, **changes)
    for name, problem in problems(updated):
        raise ConfigError(where, name, problem)
    return updated
