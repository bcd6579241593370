"""code_tests: run a case's tests against generated Python, only with --allow-code-execution.

The generated code (the first ```python fence, else the whole output) and the case's ``tests``
run in a fresh ``python -I`` subprocess in an empty temporary directory, with an empty
environment, a wall-clock timeout, and resource limits (CPU seconds, address space, file size,
open files, no child processes). This bounds a runaway or hostile answer; it is not a sandbox
against a determined attacker (no network or filesystem isolation), which is why it is opt-in.
Score 1 when the process exits 0 within the limits, else 0 (the detail says why).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from loadbench.eval.criteria import Criterion, Score

TIMEOUT_S = 10.0
CPU_S = 10
MEMORY_BYTES = 512 * 1024 * 1024
FILE_BYTES = 1024 * 1024
_FENCE = re.compile(r"```(?:python|py)?\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str:
    m = _FENCE.search(text)
    return m.group(1) if m else text


def _limits() -> None:  # runs in the child before exec
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (CPU_S, CPU_S))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_BYTES, FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def run_tests(code: str, tests: str, timeout_s: float = TIMEOUT_S) -> Score:
    with tempfile.TemporaryDirectory(prefix="lb-code-") as tmp:
        script = Path(tmp) / "check.py"
        script.write_text(code + "\n\n" + tests + "\n", encoding="utf-8")
        try:
            proc = subprocess.run([sys.executable, "-I", str(script)], cwd=tmp, env={}, capture_output=True,
                                  timeout=timeout_s, preexec_fn=_limits, text=True)
        except subprocess.TimeoutExpired:
            return Score(0.0, False, f"timed out after {timeout_s:g} s")
    if proc.returncode == 0:
        return Score(1.0, True)
    last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return Score(0.0, False, last[:200])


def score_code(criterion: Criterion, tests: str, output: str) -> Score:
    s = run_tests(extract_code(output), tests)
    return Score(s.value, s.value >= criterion.threshold, s.detail)
