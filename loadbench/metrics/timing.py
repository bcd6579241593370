"""Metric math for one request: pure functions over perf_counter_ns timestamps.

Definitions (the README table states the same):
- ttft         = first content token (of any channel: answer, reasoning, tool arguments) - intended start
- ttft_answer  = first token of the answer itself - intended start (after any thinking)
- service_ttft = first content token - actual send
- queue        = actual send - intended start (0 in closed loop)
- itl          = every gap between consecutive content chunks (a distribution, not a mean)
- tpot         = (last content chunk - first content chunk) / (output_tokens - tokens of the first chunk),
                 with the first chunk's tokens taken as output_tokens / chunks (the usage says how many
                 tokens, not which chunk carried them); one token a chunk: / (output_tokens - 1)
- e2e          = end of stream - intended start
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from loadbench.units import ns_to_us


@dataclass(slots=True)
class RequestTiming:
    intended_ns: int
    sent_ns: int
    first_byte_ns: int | None
    first_token_ns: int | None
    last_token_ns: int | None
    end_ns: int
    first_answer_ns: int | None = None
    chunks: int = 0  # content chunks timed (0: one a token, as output_tokens says)


@dataclass(slots=True)
class Derived:
    queue_us: int
    ttft_us: int | None
    service_ttft_us: int | None
    e2e_us: int
    tpot_us: int | None
    first_byte_us: int | None
    ttft_answer_us: int | None = None


def derive(t: RequestTiming, output_tokens: int | None) -> Derived:
    ttft = service = tpot = None
    if t.first_token_ns is not None:
        ttft = ns_to_us(t.first_token_ns - t.intended_ns)
        service = ns_to_us(t.first_token_ns - t.sent_ns)
        if output_tokens is not None and output_tokens >= 2 and t.last_token_ns is not None:
            span_ns = t.last_token_ns - t.first_token_ns
            chunks = t.chunks
            if 2 <= chunks < output_tokens:  # several tokens a chunk: the span covers all but the first's
                tpot = ns_to_us(span_ns * chunks // (output_tokens * (chunks - 1)))
            else:
                tpot = ns_to_us(span_ns // (output_tokens - 1))
    first_byte = ns_to_us(t.first_byte_ns - t.intended_ns) if t.first_byte_ns is not None else None
    return Derived(
        queue_us=ns_to_us(t.sent_ns - t.intended_ns),
        ttft_us=ttft,
        service_ttft_us=service,
        e2e_us=ns_to_us(t.end_ns - t.intended_ns),
        tpot_us=tpot,
        first_byte_us=first_byte,
        ttft_answer_us=ns_to_us(t.first_answer_ns - t.intended_ns) if t.first_answer_ns is not None else None,
    )


def count_stalls(gaps_us: list[int], limit_us: int) -> int:
    """Stalls of one stream: gaps between content chunks longer than ``limit_us``."""
    return sum(1 for g in gaps_us if g > limit_us)


def gaps_us(token_times_ns: list[int]) -> list[int]:
    """Inter-chunk gaps of the content chunks, in microseconds."""
    # ns_to_us inlined: this runs for every chunk of every request
    return [(b - a + 500) // 1000 for a, b in itertools.pairwise(token_times_ns)]


def read_delays_us(token_times_ns: list[int], read_times_ns: list[int], stamped: int) -> list[int]:
    """The client's own read delay per kernel-stamped chunk: when it read the chunk (user space) minus
    when the chunk arrived (kernel stamp), in microseconds. ``stamped`` of the chunks carry a stamp;
    when some do not (they came with the response head, or before the kernel stamped), the chunks
    whose two times are equal are left out: a user-space time has no delay to measure (a stamped
    chunk read in the same microsecond is left out with them, a bias of under a microsecond)."""
    pairs = zip(token_times_ns, read_times_ns, strict=False)
    if stamped >= len(token_times_ns):
        return [(u - t + 500) // 1000 for t, u in pairs]
    return [(u - t + 500) // 1000 for t, u in pairs if u != t]


def shared_times(token_times_ns: list[int]) -> int:
    """Chunks that share the previous chunk's time: read together, or coalesced by TCP into one
    segment's stamp (docs/generator.md)."""
    return sum(1 for a, b in itertools.pairwise(token_times_ns) if a == b)
