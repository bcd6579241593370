"""The master/worker messages of a run: one catalogue of names and payload types.

Locust carries them (``runner.send_message`` / ``register_message``) as msgpack, so payloads are
plain data (TypedDicts with string keys). Worker data also rides on Locust's own periodic
``worker_report`` under ``REPORT_KEY``.

    master -> workers   SPEC      the run plan when the load starts (sent again until acknowledged)
                        DRAIN     send nothing new; finish (or, interrupted, record) what is in flight
    workers -> master   HELLO     this worker listens for SPEC now (sent once, after connecting)
                        SPEC_ACK  this worker has the run plan
                        DRAINED   nothing of this worker is in flight any more
                        FINAL     the last of this worker's data, after Locust stopped its users
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypedDict, TypeVar

P = TypeVar("P")

REPORT_KEY = "lb"  # worker data inside Locust's worker_report payload


class WorkerData(TypedDict):
    """What a worker has not yet shipped: samples (JSON lines), interval histogram parts and counts (a
    sessions run's among them: collector.SESSIONS_STARTED), self-check."""

    worker: str
    samples: list[bytes]
    cpu_s: float
    in_flight: int
    parts: dict[str, Any]
    gen: dict[str, dict[str, Any]]


class DrainOrder(TypedDict):
    """``end``: the plan is over, let in-flight requests finish. ``interrupt``: the run was stopped
    by a signal; requests still in flight after ``record_after_s`` are recorded as interrupted."""

    reason: Literal["end", "interrupt"]
    record_after_s: float


class Drained(TypedDict):
    worker: str


class _Runner(Protocol):
    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None: ...
    def register_message(self, msg_type: str, listener: Callable[..., None], concurrent: bool = False) -> None: ...


@dataclass(frozen=True, slots=True)
class Message(Generic[P]):
    name: str
    doc: str

    def send(self, runner: _Runner, payload: P) -> None:
        runner.send_message(self.name, payload)

    def on(self, runner: _Runner, handler: Callable[[P, str], None]) -> None:
        """Call ``handler(payload, sender node id)`` for each message of this kind."""

        def listener(msg: Any, **_: Any) -> None:
            handler(msg.data, str(msg.node_id))

        runner.register_message(self.name, listener)


SPEC: Message[dict[str, Any]] = Message("lb_spec", "master -> workers: the RunPlan, resent till acked")
DRAIN: Message[DrainOrder] = Message("lb_drain", "master -> workers: stop sending, drain what is in flight")
DRAINED: Message[Drained] = Message("lb_drained", "worker -> master: this worker has nothing in flight")
FINAL: Message[WorkerData] = Message("lb_final", "worker -> master: the last data, after its users stopped")
SPEC_ACK: Message[Drained] = Message("lb_spec_ack", "worker -> master: the run plan arrived (SPEC is resent till then)")
# Locust's worker starts reading the master's messages before ``create_worker_runner`` returns, so a
# SPEC sent as soon as the worker counts as connected can arrive before its handler exists and be
# dropped ("Unknown message type"). The master sends SPEC only to workers that said HELLO.
HELLO: Message[Drained] = Message("lb_hello", "worker -> master: handlers registered, ready for SPEC")
