"""Prompt calibration: size synthetic prompts by the target's own token count before the run."""

from __future__ import annotations

import urllib.request
from typing import Any

import orjson

from loadbench.config import Profile, Scenario, env_value
from loadbench.plan import TargetSpec
from loadbench.run.request import RunRequest, say

CALIBRATION_REQUESTS = 4


def _post_json(url: str, body: dict[str, Any], api_key: str | None, timeout_s: float) -> dict[str, Any]:
    request = urllib.request.Request(url, data=orjson.dumps(body), method="POST",
                                     headers={"Content-Type": "application/json"})
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:
        return dict(orjson.loads(resp.read()))


def calibrate_prompts(req: RunRequest, profile: Profile, scenario: Scenario, target: TargetSpec) -> float:
    """Synthetic prompts are sized in words; the target counts tokens its own way. A few requests
    (max_tokens 1, not streamed, outside the run) measure the ratio from the server's usage, so the
    requested prompt sizes are what the target sees. Datasets are sent as they are."""
    from loadbench.workload.requests import RequestFactory, calibrate

    synthetic = (scenario.mix is not None and any(m.dataset is None for m in scenario.mix)) or (
        scenario.mix is None and scenario.dataset is None)
    if not synthetic:
        return 1.0
    key = env_value(target.api_key_env) if target.api_key_env else None
    scale = 1.0
    requested: list[int] = []
    reported: list[int] = []
    try:
        for _ in range(2):  # the second round checks the first round's scale
            factory = RequestFactory(scenario, model=target.model, stream=False, include_usage=False,
                                     seed=profile.seed + 7919, prompt_scale=scale)
            requested, reported = [], []
            for _ in range(CALIBRATION_REQUESTS):
                spec = factory.next()
                body = orjson.loads(spec.body)
                body["max_tokens"] = 1
                body.pop("max_completion_tokens", None)
                usage = _post_json(target.url + spec.path, body, key, min(profile.timeout_s, 60.0)).get("usage")
                if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
                    requested.append(spec.prompt_tokens_requested)
                    reported.append(usage["prompt_tokens"])
            if not reported:
                say(req, "note: the target reports no usage.prompt_tokens: synthetic prompts are sized at "
                          "one token per word (uncalibrated)")
                return 1.0
            new = calibrate(requested, reported, scale)
            if abs(new - scale) / scale < 0.02:
                break
            scale = new
    except Exception as exc:  # calibration is an aid: the run itself reports every failure
        say(req, f"note: prompt calibration skipped ({type(exc).__name__}: {exc}); one token per word")
        return 1.0
    say(req, f"loadbench: prompt calibration: scale {scale:.3f} words/token "
              f"(requested {sum(requested)} tokens, target counted {sum(reported)})")
    return scale
