"""One partition's embeddings as a preallocated float32 matrix, with rows grouped by a signature.

Rows are slots. Freed slots are zeroed (cosine 0, below any valid threshold) and reused, so
deletions never move rows. Capacity doubles when full, so n inserts cost O(n) copying in total.

A search either scans every row (one matrix-vector product) or only the rows of one *group*:
the cache groups rows by the near-miss guard's signature (numbers, negations, content words),
which the guard requires to be equal anyway, so a grouped search returns the same hits while
touching a handful of rows instead of the whole partition (see ``ResponseCache``).
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import numpy.typing as npt

_INITIAL_ROWS = 16


class VectorIndex:
    __slots__ = ("_free", "_gids", "_group_ids", "_groups", "_ids", "_matrix", "_next_gid", "_scores",
                 "_slot_group", "_used", "count", "dim")

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._matrix = np.zeros((_INITIAL_ROWS, dim), dtype=np.float32)
        self._ids = np.full(_INITIAL_ROWS, -1, dtype=np.int64)
        self._scores = np.empty(_INITIAL_ROWS, dtype=np.float32)
        self._used = 0  # high-water mark: rows [0, _used) have ever been written
        self._free: list[int] = []
        # group -> its slots (a dict as an ordered set: O(1) removal); slot -> its group
        self._groups: dict[Hashable, dict[int, None]] = {}
        self._slot_group: dict[int, Hashable] = {}
        # a small integer per group and per row, so a large group is searched by one full product
        # and a mask instead of gathering most of the matrix row by row
        self._group_ids: dict[Hashable, int] = {}
        self._gids = np.full(_INITIAL_ROWS, -1, dtype=np.int32)
        self._next_gid = 0
        self.count = 0

    def add(self, vec: npt.NDArray[np.float32], entry_id: int, group: Hashable | None = None) -> int:
        if vec.shape != (self.dim,):
            raise ValueError(f"vector of shape {vec.shape}, index dimension {self.dim}")
        if self._free:
            slot = self._free.pop()
        else:
            if self._used == len(self._ids):
                self._grow()
            slot = self._used
            self._used += 1
        self._matrix[slot] = vec
        self._ids[slot] = entry_id
        if group is not None:
            members = self._groups.get(group)
            if members is None:
                members = self._groups[group] = {}
                self._group_ids[group] = self._next_gid
                self._next_gid += 1
            members[slot] = None
            self._slot_group[slot] = group
            self._gids[slot] = self._group_ids[group]
        self.count += 1
        return slot

    def remove(self, slot: int) -> None:
        self._matrix[slot] = 0.0
        self._ids[slot] = -1
        self._gids[slot] = -1
        self._free.append(slot)
        group = self._slot_group.pop(slot, None)
        if group is not None:
            members = self._groups[group]
            del members[slot]
            if not members:
                del self._groups[group]
                del self._group_ids[group]
        self.count -= 1

    def has_group(self, group: Hashable) -> bool:
        return group in self._groups

    def search(self, query: npt.NDArray[np.float32], threshold: float, limit: int,
               group: Hashable | None = None) -> list[tuple[int, float]]:
        """Entry ids with cosine >= threshold, best first, at most ``limit``; only the rows added
        with ``group`` when it is given."""
        rows = None
        members = None
        if group is not None:
            members = self._groups.get(group)
            if not members:
                return []
        if members is not None and len(members) * 8 < self._used:
            rows = np.fromiter(members, dtype=np.intp, count=len(members))
            scores = self._matrix[rows] @ query
            hits = np.flatnonzero(scores >= threshold)
        else:
            n = self._used
            if n == 0:
                return []
            scores = self._scores[:n]
            np.matmul(self._matrix[:n], query, out=scores)
            above = scores >= threshold
            if members is not None:
                above &= self._gids[:n] == self._group_ids[group]
            hits = np.flatnonzero(above)
        if hits.size == 0:
            return []
        if hits.size > limit:
            top = np.argpartition(scores[hits], -limit)[-limit:]
            hits = hits[top]
        order = hits[np.argsort(-scores[hits], kind="stable")]
        slots = order if rows is None else rows[order]
        return [(int(self._ids[s]), float(scores[i])) for s, i in zip(slots, order, strict=True)
                if self._ids[s] >= 0]

    def row(self, slot: int) -> npt.NDArray[np.float32]:
        """A copy of the vector at ``slot``."""
        return self._matrix[slot].copy()

    def nbytes(self) -> int:
        return self._matrix.nbytes + self._ids.nbytes + self._scores.nbytes + self._gids.nbytes

    def _grow(self) -> None:
        rows = len(self._ids) * 2
        matrix = np.zeros((rows, self.dim), dtype=np.float32)
        matrix[: self._used] = self._matrix[: self._used]
        ids = np.full(rows, -1, dtype=np.int64)
        ids[: self._used] = self._ids[: self._used]
        gids = np.full(rows, -1, dtype=np.int32)
        gids[: self._used] = self._gids[: self._used]
        self._matrix, self._ids, self._gids = matrix, ids, gids
        self._scores = np.empty(rows, dtype=np.float32)
