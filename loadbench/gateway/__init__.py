"""loadbench's gateway: an OpenAI-compatible router in front of several providers.

Modules: ``config`` (YAML -> runtime spec), ``routing`` / ``health`` / ``stats`` (pure policy,
clock and RNG injected), ``sse`` (byte-level stream helpers), ``upstream`` (one sized pool per
target), ``state`` (what a request reads; swapped on reload), ``context`` (per-request context and
the cache hook), ``handler`` (the pipeline), ``app`` (routes), ``metrics`` (Prometheus text),
``server`` (workers, signals). See docs/gateway.md.
"""
