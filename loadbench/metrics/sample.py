"""One finished request, as measured by a worker. The record behind samples.jsonl."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from loadbench.outcomes import SAMPLE_OUTCOMES, canonical

OUTCOMES = SAMPLE_OUTCOMES  # the words a sample can say (the whole vocabulary: loadbench.outcomes)
PHASES = ("warmup", "measure", "cooldown")


@dataclass(slots=True)
class Sample:
    """Durations are integer microseconds from the request's intended start (None: not applicable)."""

    seq: int
    worker: str
    type: str
    target: str
    phase: str
    intended_unix_ns: int
    outcome: str
    status: int
    queue_us: int | None = None
    ttft_us: int | None = None
    service_ttft_us: int | None = None
    e2e_us: int | None = None
    tpot_us: int | None = None
    first_byte_us: int | None = None
    chunks: int = 0
    itl_mean_us: int | None = None
    itl_max_us: int | None = None
    stalls: int | None = None  # gaps between content chunks over the profile's stall_ms (None: not counted)
    prompt_tokens: int | None = None
    cached_tokens: int | None = None  # of prompt_tokens, read from the target's prompt/prefix cache (usage)
    output_tokens: int | None = None
    tokens_source: str = "usage"
    prompt_tokens_requested: int | None = None
    output_tokens_requested: int | None = None
    error: str | None = None
    cache: str | None = None
    backoff_us: int | None = None  # the user's wait after this answer (429/5xx backoff), before its next request
    ttft_answer_us: int | None = None  # to the first token of the answer (ttft counts thinking too)
    error_kind: str | None = None  # the protocol's error type (overloaded_error, throttlingException, ...)
    cache_write_tokens: int | None = None  # of prompt_tokens, written to it (usage)
    reasoning_tokens: int | None = None  # of output_tokens, thinking (usage)
    metadata: dict[str, str] = field(default_factory=dict)
    session: str | None = None  # multi-turn: the session's id
    turn: int | None = None  # multi-turn: 1 for the session's first request
    session_turns: int | None = None  # multi-turn: the turns the session was to have
    # of chunks, those timed by a kernel receive stamp, and those sharing the previous chunk's time (one
    # read or one coalesced segment). stamped_chunks is 0 where the connection gave no stamps (user-space
    # times); both are None without chunks, and in folders written before receive stamps
    stamped_chunks: int | None = None
    shared_chunks: int | None = None
    ttft_user_us: int | None = None  # ttft as user space read it (kernel-stamped runs: the figure beside ttft)
    # kernel-stamped sends: from when the client began to send the request to when its last byte left
    # (the client's own send delay; in closed loop, outside ttft and e2e, which start at the send stamp)
    send_delay_us: int | None = None

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson serialises (slotted) dataclasses natively, in field order

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Sample:
        known = {k: obj[k] for k in cls.__dataclass_fields__ if k in obj}
        if "outcome" in known:
            known["outcome"] = canonical(known["outcome"])  # a folder written with an older word reads as today's
        return cls(**known)
