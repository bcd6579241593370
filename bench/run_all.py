"""``make bench``: every benchmark in turn; each writes its figures to bench/out/<name>.json."""

from __future__ import annotations

import subprocess
import sys

BENCHES = ["bench.generator_bench", "bench.generator_matrix", "bench.mock_bench", "bench.gateway_bench",
           "bench.gateway_paired", "bench.cache_bench", "bench.soak", "bench.requestlog_bench", "bench.pglog_bench",
           "bench.shadow_bench", "bench.redis_state_bench",
           "bench.engine_bench"]  # the last: the first run on a machine builds the engine (minutes)


def main() -> int:
    failed = []
    for mod in BENCHES:
        print(f"== {mod}", flush=True)
        if subprocess.call([sys.executable, "-m", mod]) != 0:
            failed.append(mod)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
