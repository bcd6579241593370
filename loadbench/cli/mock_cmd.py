"""``loadbench mock``: run the OpenAI-compatible fake LLM (see loadbench.mock)."""

from __future__ import annotations

import click

from loadbench.mock.faults import FAULTS
from loadbench.mock.settings import MockSettings, limits, problems


def _int_range(name: str) -> click.IntRange:
    lo, hi = limits(name)
    return click.IntRange(int(lo), None if hi is None else int(hi))


def _float_range(name: str) -> click.FloatRange:
    lo, hi = limits(name)
    return click.FloatRange(lo, hi)


_D = MockSettings()


@click.command("mock")
@click.option("--host", default=_D.host, show_default=True, help="Address to bind.")
@click.option("--port", default=_D.port, show_default=True, type=_int_range("port"),
              help="Port to bind; 0 picks a free one (printed in the listening line).")
@click.option("--model", default=_D.model, show_default=True, help="Model name in /v1/models.")
@click.option("--ttft-ms", default=_D.ttft_ms, show_default=True, type=_float_range("ttft_ms"),
              help="Time from arrival (or leaving the queue) to the first content chunk.")
@click.option("--itl-ms", default=_D.itl_ms, show_default=True, type=_float_range("itl_ms"),
              help="Time between consecutive content chunks.")
@click.option("--jitter-ms", default=_D.jitter_ms, show_default=True, type=_float_range("jitter_ms"),
              help="Uniform +-jitter on every chunk's deadline (seeded).")
@click.option("--output-tokens", default=_D.output_tokens, show_default=True,
              type=_int_range("output_tokens"),
              help="Tokens generated when the request sets no max_tokens/max_completion_tokens.")
@click.option("--max-output-tokens", default=_D.max_output_tokens, show_default=True,
              type=_int_range("max_output_tokens"),
              help="Largest max_tokens a request may ask for; above it the request gets a 400.")
@click.option("--tokens-per-chunk", default=_D.tokens_per_chunk, show_default=True,
              type=_int_range("tokens_per_chunk"),
              help="Tokens per content chunk (the last may carry fewer).")
@click.option("--error-rate", default=_D.error_rate, show_default=True, type=_float_range("error_rate"),
              help="Fraction of requests answered with --error-status (seeded).")
@click.option("--error-status", default=_D.error_status, show_default=True,
              type=_int_range("error_status"), help="HTTP status of injected errors.")
@click.option("--max-concurrency", default=_D.max_concurrency, show_default=True,
              type=_int_range("max_concurrency"),
              help="Requests served at once per worker; more wait FIFO (0 = unlimited).")
@click.option("--seed", default=_D.seed, show_default=True, type=int, help="Seed for errors and jitter.")
@click.option("--workers", default=_D.workers, show_default=True, type=_int_range("workers"),
              help="Processes sharing the port via SO_REUSEPORT.")
@click.option("--no-usage", is_flag=True, default=False, help="Never send usage (not even when asked).")
@click.option("--embedding-dim", default=_D.embedding_dim, show_default=True,
              type=_int_range("embedding_dim"), help="Dimension of /v1/embeddings vectors.")
@click.option("--fault", default=None, type=click.Choice(FAULTS),
              help="Answer a fraction of generation requests with this fault (see loadbench.mock.faults).")
@click.option("--fault-rate", default=_D.fault_rate, show_default=True, type=_float_range("fault_rate"),
              help="Fraction of generation requests answered with --fault (seeded).")
@click.option("--fault-hold-s", default=_D.fault_hold_s, show_default=True, type=_float_range("fault_hold_s"),
              help="Longest stall of a stalling fault (hang, headers-then-stall, ...).")
@click.option("--fault-retry-after-s", default=_D.fault_retry_after_s, show_default=True,
              type=_int_range("fault_retry_after_s"), help="Retry-After of the 429-retry-after fault.")
@click.option("--answers", default="", help="Dataset JSONL: answer its cases with known quality (docs/eval.md).")
@click.option("--accuracy", default=_D.accuracy, show_default=True, type=_float_range("accuracy"),
              help="With --answers: probability that an answer is the ground truth (seeded); with --agent: "
              "that a trial follows the gold actions.")
@click.option("--format-error-rate", default=_D.format_error_rate, show_default=True,
              type=_float_range("format_error_rate"), help="Share of wrong JSON answers that are malformed.")
@click.option("--consistency", default=_D.consistency, show_default=True, type=_float_range("consistency"),
              help="Probability that a repeat of a case gives that case's canonical answer.")
@click.option("--verbosity", default=_D.verbosity, show_default=True, type=_int_range("verbosity"),
              help="Hidden reasoning tokens billed as output on every answer.")
@click.option("--context-window", default=_D.context_window, show_default=True,
              type=_int_range("context_window"), help="Prompt tokens accepted (0 = unlimited).")
@click.option("--overflow", default=_D.overflow, show_default=True, type=click.Choice(["error", "truncate"]),
              help="Past --context-window: HTTP 400, or answer as if the prompt were cut.")
@click.option("--answer-signature", default="", help="Append this provider fingerprint to free-text answers.")
@click.option("--judge", is_flag=True, default=False, help="Act as an LLM judge for loadbench eval prompts.")
@click.option("--judge-position-bias", default=_D.judge_position_bias, show_default=True,
              type=_float_range("judge_position_bias"), help="Probability the judge prefers the first answer.")
@click.option("--judge-name-bias", default="", help="The judge prefers answers that mention this name.")
@click.option("--agent", default="", help="Tasks JSON (written by loadbench eval): play an agent of known "
              "competence for tool-calling requests (docs/eval.md).")
@click.option("--agent-mistakes", default=_D.agent_mistakes, show_default=True,
              help="With --agent: the mistakes an incompetent trial makes, drawn per trial.")
@click.option("--prefill-ms-per-token", default=_D.prefill_ms_per_token, show_default=True,
              type=_float_range("prefill_ms_per_token"),
              help="Server model: TTFT grows by this per prompt token the prefix cache did not hold (docs/mock.md).")
@click.option("--prefix-cache-blocks", default=_D.prefix_cache_blocks, show_default=True,
              type=_int_range("prefix_cache_blocks"),
              help="Server model: an LRU of this many prompt blocks shared by all requests; hits cost no prefill "
                   "and are reported in usage.prompt_tokens_details.cached_tokens (0 = no cache).")
@click.option("--prefix-block-tokens", default=_D.prefix_block_tokens, show_default=True,
              type=_int_range("prefix_block_tokens"), help="Server model: tokens per prefix-cache block.")
@click.option("--decode-slowdown", default=_D.decode_slowdown, show_default=True, type=_float_range("decode_slowdown"),
              help="Server model: ITL x (1 + this x (streams holding a slot - 1)), fixed when a stream gets its "
                   "slot; --max-concurrency is the batch limit beyond which requests queue.")
@click.option("--protocol", "protocols", multiple=True, default=_D.protocols, show_default=True, metavar="NAME",
              help="Protocol to answer on its own routes: openai, openai-responses, azure, anthropic, bedrock, "
                   "gemini; repeat to answer several at once.")
@click.option("--pings", default=_D.pings, show_default=True, type=_int_range("pings"),
              help="Keepalive events (Anthropic's ping) before the first token.")
@click.option("--thinking-tokens", default=_D.thinking_tokens, show_default=True,
              type=_int_range("thinking_tokens"), help="A thinking block of N tokens before the answer "
              "(streamed as reasoning, counted as output and reasoning tokens).")
@click.option("--filter-every", default=_D.filter_every, show_default=True, type=_int_range("filter_every"),
              help="A content-filter frame (Azure) after every N chunks; 0 = none.")
@click.option("--stream-error-after", default=_D.stream_error_after, show_default=True,
              type=_int_range("stream_error_after"), help="End every stream with an error event after N "
              "chunks (the protocol's own: Anthropic's overloaded_error, Bedrock's exception frame); 0 = never.")
@click.option("--stream-error-status", default=_D.stream_error_status, show_default=True,
              type=_int_range("stream_error_status"), help="The status that error event stands for "
              "(529 overloaded, 429 throttling).")
def mock(**options: object) -> int:
    """Run a fake LLM in any provider's protocol with exact, configurable timing."""
    options["fault"] = options["fault"] or ""
    options["protocols"] = tuple(dict.fromkeys(options["protocols"]))  # type: ignore[call-overload]
    settings = MockSettings(**options)  # type: ignore[arg-type]
    found = problems(settings)
    if found:
        field, problem = found[0]
        raise click.BadParameter(problem, param_hint="--" + field.replace("_", "-"))
    from loadbench.mock.server import run

    return run(settings)
