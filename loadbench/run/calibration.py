"""Prompt calibration: size synthetic prompts by the target's own token count before the run."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from loadbench.config import Profile, Scenario
from loadbench.plan.run import TargetSpec
from loadbench.protocol.dialect import LLMRequest
from loadbench.protocol.registry import dialect
from loadbench.run.request import RunRequest, say
from loadbench.run.target import one_request, run_factory

CALIBRATION_REQUESTS = 4


@dataclass(frozen=True, slots=True)
class Calibration:
    scale: float = 1.0  # words per token of the synthetic text
    overhead: Mapping[str, int] = field(default_factory=dict)  # request type -> tokens besides the text


def calibrate_prompts(req: RunRequest, profile: Profile, scenario: Scenario, target: TargetSpec) -> Calibration:
    """Synthetic prompts are sized in words; the target counts tokens its own way. A few requests
    (max_tokens 1, not streamed, outside the run) measure the ratio from the server's usage, so the
    requested prompt sizes are what the target sees.

    Only the synthetic text is calibrated: dataset requests are sent as they are and left out, and
    what the target counts besides the text (the system prompt, the chat template) is measured with
    the same request with an empty text and subtracted. Rounds repeat with the new scale until two
    agree within CONVERGED (at most MAX_ROUNDS); otherwise the last scale is used and the run says so."""
    from loadbench.workload.requests import calibrate

    names = _synthetic_types(scenario)
    if not names:
        return Calibration()
    timeout_s = min(profile.timeout_s, 60.0)
    scale = 1.0
    scales: list[float] = []
    requested: list[int] = []
    counted: list[int] = []
    overhead: dict[str, int | None] = {}
    try:
        for _ in range(MAX_ROUNDS):
            factory = run_factory(scenario, target, stream=False, seed=profile.seed + 7919, prompt_scale=scale)
            requested, counted = [], []
            for _ in range(CALIBRATION_REQUESTS * 50):  # bounded: datasets may dominate the mix
                if len(requested) >= CALIBRATION_REQUESTS:
                    break
                spec = factory.next()
                if spec.request_type not in names:
                    continue
                assert spec.request is not None
                total = _prompt_tokens(target, spec.request, timeout_s)
                if spec.request_type not in overhead:
                    overhead[spec.request_type] = _prompt_tokens(target, _without_text(spec.request), timeout_s)
                base = overhead[spec.request_type]
                if total is not None and base is not None and total > base:
                    requested.append(spec.prompt_tokens_requested)
                    counted.append(total - base)
            if not counted:
                say(req, "note: the target reports no usage.prompt_tokens: synthetic prompts are sized at "
                         "one token per word (uncalibrated)")
                return Calibration()
            new = calibrate(requested, counted, scale)
            scales.append(new)
            if abs(new - scale) / scale < CONVERGED:
                scale = new
                break
            scale = new
        else:
            say(req, f"note: prompt calibration did not settle in {MAX_ROUNDS} rounds (scales "
                     f"{', '.join(f'{x:.3f}' for x in scales)}); using the last")
    except Exception as exc:  # calibration is an aid: the run itself reports every failure
        say(req, f"note: prompt calibration skipped ({type(exc).__name__}: {exc}); one token per word")
        return Calibration()
    say(req, f"loadbench: prompt calibration: scale {scale:.3f} words/token over the synthetic text "
             f"(requested {sum(requested)} tokens, target counted {sum(counted)} beyond the system prompt "
             "and template)")
    return Calibration(scale, {name: n for name, n in overhead.items() if n is not None})


MAX_ROUNDS = 4
CONVERGED = 0.02


def _synthetic_types(scenario: Scenario) -> set[str]:
    """Names of the request types whose prompts loadbench writes (not read from a dataset)."""
    if scenario.mix is not None:
        return {m.name for m in scenario.mix if m.dataset is None and scenario.dataset is None}
    return set() if scenario.dataset is not None else {"default"}


def _without_text(request: LLMRequest) -> LLMRequest:
    """The same request with its synthetic text empty (chat: the last user message; completions:
    what follows the system prompt)."""
    if request.prompt is None:
        last = request.messages[-1]
        return replace(request, messages=(*request.messages[:-1], replace(last, content="")))
    prompt = request.prompt
    return replace(request, prompt=prompt[: prompt.find("\n\n") + 2] if "\n\n" in prompt else "")


def _prompt_tokens(target: TargetSpec, request: LLMRequest, timeout_s: float) -> int | None:
    """The prompt tokens the target counts for ``request`` (one output token, not streamed)."""
    one = one_request(target, request, max_tokens=1, stream=False)
    with urllib.request.urlopen(urllib.request.Request(one.url, data=one.body, method="POST", headers=one.headers),
                                timeout=timeout_s) as resp:
        usage = dialect(target.protocol).decode(resp.read()).usage
    return usage.prompt_tokens if usage is not None else None
