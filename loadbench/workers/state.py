"""The process-wide runtime of a worker (set once the master sends the run plan)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loadbench.workers.runtime import WorkerRuntime

RUNTIME: WorkerRuntime | None = None
