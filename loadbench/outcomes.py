"""The one vocabulary for how an attempt ended: the worker's samples, the eval runner's calls and the
gateway's upstream attempts and request-log rows all say it with these words.

    ok                      a complete answer with content
    failed                  (not a word itself: every failure below is one)
    ├── http_error          the server answered an error: status >= 400, or an error object in a
    │                       200 body or stream (a mid-stream error event)
    ├── timeout             no complete answer within the deadline
    ├── connection_error    no response at all: refused, reset or closed before the status line
    ├── stream_cut          the response started, then ended early: the connection closed mid-body
    │                       or the stream ended without its end marker (OpenAI: ``data: [DONE]``)
    ├── empty               a complete answer without one content token
    └── invalid_answer      a 200 that is not an answer of the protocol (HTML, garbage, SSE to a
                            whole request, a whole body to a stream)
    not timed               (the generator's own words: never a failure of the target)
    ├── dropped             open loop: the arrival could not be sent (max_in_flight reached)
    └── interrupted         still in flight when the run was stopped, after its drain
    gateway request log     (a row is a client's request, not an upstream attempt)
    ├── error               the client got a non-200 answer
    ├── client_gone         the client left before the answer ended (status 499)
    └── check_failed        an answer check failed and the request was escalated

``connection_error`` and ``stream_cut`` are the README's words, written in ``summary.json`` and run
folders. Older gateways logged ``connect_error`` (attempt metrics) and ``stream_break`` (request-log
rows) for the same two things: every reader passes a stored word through ``canonical`` so old run
folders and old logs read as new ones.
"""

from __future__ import annotations

from typing import Final

OK: Final = "ok"
HTTP_ERROR: Final = "http_error"
TIMEOUT: Final = "timeout"
CONNECTION_ERROR: Final = "connection_error"
STREAM_CUT: Final = "stream_cut"
EMPTY: Final = "empty"
INVALID_ANSWER: Final = "invalid_answer"
DROPPED: Final = "dropped"
INTERRUPTED: Final = "interrupted"
ERROR: Final = "error"
CLIENT_GONE: Final = "client_gone"
CHECK_FAILED: Final = "check_failed"

FAILURES: Final = (HTTP_ERROR, TIMEOUT, CONNECTION_ERROR, STREAM_CUT, EMPTY, INVALID_ANSWER)
# what a load-test sample can say (samples.jsonl, summary.json), in the README's order
SAMPLE_OUTCOMES: Final = (OK, HTTP_ERROR, TIMEOUT, CONNECTION_ERROR, STREAM_CUT, EMPTY, DROPPED, INTERRUPTED)
# what a gateway request-log row can say
LOG_OUTCOMES: Final = (OK, ERROR, STREAM_CUT, CLIENT_GONE, CHECK_FAILED)
# the failures after which the same request may succeed if sent again (the eval runner's retry)
RETRYABLE: Final = frozenset({CONNECTION_ERROR, STREAM_CUT})

# Old words for the same outcomes, as older gateways and logs wrote them.
OLD_WORDS: Final = {"connect_error": CONNECTION_ERROR, "stream_break": STREAM_CUT}


def canonical(word: str) -> str:
    """The outcome as this vocabulary says it (an old word mapped, any other word unchanged)."""
    return OLD_WORDS.get(word, word)


def is_failure(word: str) -> bool:
    return canonical(word) in FAILURES
