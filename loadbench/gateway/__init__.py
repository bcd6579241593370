"""loadbench's gateway: an OpenAI-compatible router in front of several providers.

Modules, by what they hold (docs/gateway.md, docs/ARCHITECTURE.md):

- request path: ``app`` (routes, /health, /metrics), ``connections`` (connection limits, parser-level
  errors), ``exchange`` (one request's steps), ``context`` (per-request context, the cache hook),
  ``auth``, ``openai_error``, ``upstream`` (one sized pool per target), ``relay`` (stream bookkeeping),
  ``watchdog`` (read deadlines), ``cache_hook``, ``escalation``;
- routing: ``policies`` (route policies by name), ``routing`` / ``costroute`` / ``health`` / ``stats``
  (pure policy, clock and RNG injected);
- wiring: ``state`` (the ``Gateway`` and the snapshot a request reads; swapped on reload), ``events``
  (what the gateway announces), ``poller`` (periodic work off the request path), ``sharedstate``
  (state the processes share), ``server`` (workers, signals), ``metrics`` (Prometheus text);
- config: ``config``, ``abconfig``;
- around the request log: ``requestlog`` (the sink), ``logrecord``, ``logdb`` (schema, statements),
  ``experiments`` / ``guardrails``, ``shadow``, ``answer_judge``, ``estimates``, ``breakdown``,
  ``feedback``, ``admin``.
"""
