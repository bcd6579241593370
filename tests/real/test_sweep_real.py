"""`loadbench sweep` against a real engine under a TTFT SLO, for two slot counts: the capacity is at
or below the engine's slots, and the first step above them misses the SLO because requests queue in
the engine, which its own ``/metrics`` shows (``requests_deferred``) beside loadbench's figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.engine_sweep import sweep_engine

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.alone]


@pytest.mark.parametrize("slots", [2, 4])
def test_sweep_capacity_is_the_slots_and_the_step_above_queues_in_the_engine(engine_factory, tmp_path: Path,
                                                                            slots: int) -> None:
    engine = engine_factory(slots=slots, cpu=1)  # pinned: the SLO is a latency
    result = sweep_engine(engine, slots, tmp_path)
    table = "\n".join(str(s.to_json()) for s in result.steps)
    print(f"slots {slots}: capacity {result.capacity}\n{table}")
    assert result.exit_code == 0, result.console
    assert all(s.requests_failed == 0 and s.queue.scrapes >= 10 for s in result.steps), table
    assert all(s.queue.processing_max <= slots for s in result.steps), table  # the engine's own slot count
    # every step up to the slots met the SLO, and never a request waited in the engine ...
    assert result.capacity == slots, table
    assert all(s.slo_met and s.queue.deferred_max == 0 for s in result.steps if s.users <= slots), table
    # ... the first step above them missed it, because requests waited for a slot in the engine
    above = result.steps[-1]
    assert above.users == slots + 1 and not above.slo_met, table
    assert above.queue.deferred_max >= 1, table
