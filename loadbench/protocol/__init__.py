"""The wire protocols, pure (bytes in, typed records out; no I/O, no clock).

``dialect`` (the ``Dialect`` interface and its records), ``registry`` (dialects by name), one module
per protocol (``openai``, ``responses``, ``azure``, ``anthropic``, ``bedrock``, ``gemini``; docs/protocols.md),
``usage`` (token counts as every dialect reports them), ``sse`` (incremental SSE decoding) and ``sseout``
(writing events), ``aws`` (AWS's event-stream framing and SigV4 signing), the pieces several dialects
share (``eventdecoder``, ``toolcalls``, ``turns``, ``finish``, ``jsonscan``, ``streampath``), ``http``
(the aiohttp glue that answers routing misses as OpenAI errors)."""
