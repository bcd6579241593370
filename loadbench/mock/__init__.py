"""``loadbench mock``: an OpenAI-compatible fake LLM with exact, configurable timing.

It is loadbench's ruler: a stream's first content token is due ``ttft`` after the request
arrives and each later content chunk ``itl`` after the previous one, scheduled against absolute
deadlines so that timing does not drift under load.

Modules (pure logic first, then the server):
    settings   MockSettings (slotted dataclass), validation, live updates from /mock/config
    tokens     prompt-token counting and the synthetic output tokens (" tok0 tok1 ...")
    request    parse an OpenAI request body into a GenerationRequest
    schedule   chunk sizes and the deadline of every content chunk (seeded jitter)
    stats      the /mock/stats counters (chunks written, late chunks, disconnects, ...)
    pacer      one timer per process writes every stream's due chunks to its transport
    bodies     SSE chunk templates, non-streamed bodies, embeddings, error bodies
    gate       a FIFO admission gate (``--max-concurrency``)
    app        ``create_app(settings) -> aiohttp.web.Application``
    server     run the app on uvloop, SO_REUSEPORT workers, listening line, signals

Token accounting (what ``usage`` reports):
    prompt_tokens      whitespace-separated words across all message contents (chat; a content
                       may be a string or a list of ``{"type": "text", "text": ...}`` parts) or
                       across the prompt (completions; a string, a list of strings, or token ids
                       which count one each).
    completion_tokens  exactly ``max_tokens`` (or ``max_completion_tokens``) when the request sets
                       it, else ``--output-tokens``. Each output token is one word such as
                       ``" tok12"`` so a whitespace word count of the output equals the count.

This package must never import locust or gevent.
"""
