"""Pre-flight: one real request of the run's own kind before any load, so a wrong URL, key or
model stops the run at once (exit 4, naming the cause) instead of flooding the target with
requests that can only fail.

Stops the run: connection refused or unresolvable host, 401, 403, 404 (and 400 / 422 naming the
model). Goes ahead: success, 429 and 5xx (the load itself measures and reports those), timeouts.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from loadbench.errors import TargetError
from loadbench.protocol.dialect import Dialect
from loadbench.protocol.openai import OPENAI

PREFLIGHT_TIMEOUT_S = 30.0

_CAUSES = {
    401: "401 unauthorized: check --api-key-env (or the target's api_key_env) and that the key is valid",
    403: "403 forbidden: the key is not allowed to use this model or endpoint",
    404: "404 not found: the URL should end in /v1 (try http://HOST:PORT/v1), and the model name must be right",
}


@dataclass(frozen=True, slots=True)
class PreflightResult:
    status: int  # 0: no HTTP answer (timed out)
    message: str


def preflight(url: str, body: bytes, headers: dict[str, str],
              timeout_s: float = PREFLIGHT_TIMEOUT_S, wire: Dialect = OPENAI) -> PreflightResult:
    """POST ``body`` (one request of the run, max_tokens 1, not streamed) to ``url``; TargetError
    when the answer says the load could only fail."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return PreflightResult(resp.status, "ok")
    except urllib.error.HTTPError as exc:
        message = wire.error(exc.code, exc.read(64 * 1024)).message
        verdict = _stop_cause(exc.code, message)
        if verdict is not None:
            raise TargetError(f"pre-flight request to {url} failed: {verdict}; no load was sent") from None
        return PreflightResult(exc.code, message)
    except TimeoutError:
        return PreflightResult(0, f"no answer within {timeout_s:g} s")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            return PreflightResult(0, f"no answer within {timeout_s:g} s")
        raise TargetError(f"pre-flight request to {url} failed: cannot connect ({reason}); is the server "
                          "running and the URL right? no load was sent") from None


def _stop_cause(status: int, message: str) -> str | None:
    if status in _CAUSES:
        return _CAUSES[status] + (f" (the target said: {message})" if message else "")
    if status in (400, 422) and "model" in message.lower():
        return f"{status}: the target rejects the model: {message}"
    return None
