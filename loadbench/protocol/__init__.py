"""The wire protocols, pure (bytes in, typed records out; no I/O, no clock).

``dialect`` (the ``Dialect`` interface and its records), ``registry`` (dialects by name), ``openai``
(the first dialect), ``usage`` (token counts as every dialect reports them), ``sse`` (incremental SSE
decoding), ``http`` (the aiohttp glue that answers routing misses as OpenAI errors)."""
