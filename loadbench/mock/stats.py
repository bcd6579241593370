"""The counters behind ``GET /mock/stats`` (one set per process; ``DELETE`` replaces them)."""

from __future__ import annotations

from dataclasses import dataclass, field

LATE_S = 0.002  # a chunk written this long after its deadline counts as late


@dataclass(slots=True)
class MockStats:
    requests: int = 0  # inference requests (chat, completions, embeddings)
    connections: int = 0  # of them, the first on their connection (a client that keeps connections alive opens few)
    in_flight: int = 0
    max_in_flight: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    disconnects: int = 0  # clients that left mid-stream
    faults: int = 0  # requests answered with the configured fault
    chunks: int = 0  # content chunks written
    late_chunks: int = 0  # written more than LATE_S after their deadline
    max_lateness_s: float = 0.0

    def arrived(self, protocol: object) -> None:
        """One more inference request, on ``protocol``'s connection (aiohttp's per-connection handler,
        which counts the requests it has read: 1 on a new connection)."""
        self.requests += 1
        if getattr(protocol, "_request_count", 0) == 1:
            self.connections += 1

    def count(self, status: int) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1
