"""loadbench: load-test and latency-benchmark OpenAI-compatible LLM endpoints."""

__version__ = "0.1.0"
