"""Wire protocol helpers: incremental SSE decoding and OpenAI bodies. Pure, no I/O."""
