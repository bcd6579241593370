"""The metric definitions every report states (docs/results-format.md and DESIGN.md are the source)."""

from __future__ import annotations

DEFINITIONS: dict[str, str] = {
    "ttft": "time to first token: first content-bearing chunk of any channel (answer, reasoning, tool "
            "arguments) minus the request's intended start (role-only or empty deltas and structural events "
            "do not count; in open-loop runs includes queue delay)",
    "ttft_answer": "time to the first token of the answer itself (after any thinking or reasoning) minus the "
                   "intended start; equal to ttft when the model streams no reasoning",
    "itl": "inter-chunk latency: every gap between consecutive content chunks (a distribution of gaps, "
           "not a per-request mean); vLLM 'ITL', AIPerf 'ICL'",
    "tpot": "time per output token: (last token - first token) / (output_tokens - 1), per request with at "
            "least 2 output tokens (chunks of several tokens: per token from the server's usage); "
            "vLLM/inference-perf 'TPOT', GuideLLM 'ITL'",
    "e2e": "end-to-end latency: end of stream minus intended start",
    "queue": "queue delay: actual send minus intended start (coordinated-omission visibility)",
    "service_ttft": "first token minus actual send (TTFT as the server alone caused it)",
    "throughput": "successful requests (and output tokens) per second over the measure window",
    "error_rate": "failed / (measured - dropped - interrupted): failed requests over the requests sent "
                  "whose intended start is in the measure window that got an answer or a failure "
                  "(dropped open-loop arrivals were never sent, interrupted ones were still in flight when their "
                  "user was stopped at the end of the run, after the drain; both are counted apart)",
    "goodput": "successful requests per second whose every value is within the SLO's loosest limit for it",
    "stalls": "a stall is a gap between content chunks longer than the profile's stall_ms (default 250 ms); "
              "stalls per 1,000 output tokens = 1000 x stalls / output tokens, and the share of streams "
              "with at least one stall, over successful streamed requests",
}

EXCLUSIONS = ("Latency figures count only requests whose intended start falls in the measure phase and "
              "that finished with outcome 'ok'. Warm-up and cool-down requests are excluded from every "
              "figure; failed requests are counted by outcome and in error_rate but never in latencies.")
