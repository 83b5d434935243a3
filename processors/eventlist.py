"""The highest-scoring events of a sample, as a coffea accumulator.

Each chunk keeps its ``n`` highest-scoring selected events with their identity, score and
features; adding two lists keeps the ``n`` highest of both. Since every event of the global top
``n`` is in the top ``n`` of its own chunk, the accumulated list is exactly the sample's top ``n``,
however the chunks were split and in whatever order they were added. Ties are broken by
(run, event), so the list does not depend on the executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TopEvents:
    """The ``n`` events with the highest ``columns[key]`` (an ``Addable`` coffea accumulator)."""

    n: int
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    key: str = "score"

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"TopEvents.n must be >= 0, got {self.n}")
        lengths = {k: len(v) for k, v in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"TopEvents columns of different lengths: {lengths}")
        if self.columns and self.key not in self.columns:
            raise ValueError(f"TopEvents has no {self.key!r} column (has {sorted(self.columns)})")
        if self.columns:
            order = self._order()
            self.columns = {k: np.asarray(v)[order] for k, v in self.columns.items()}

    def _order(self) -> np.ndarray:
        score = np.asarray(self.columns[self.key], dtype=np.float64)
        score = np.where(np.isnan(score), -np.inf, score)  # a NaN score never ranks first
        tie = [np.asarray(self.columns[c]) for c in ("event", "run") if c in self.columns]
        return np.lexsort((*tie, -score))[: self.n]

    def __len__(self) -> int:
        return len(self.columns[self.key]) if self.columns else 0

    def __add__(self, other: TopEvents) -> TopEvents:
        if not isinstance(other, TopEvents):
            return NotImplemented
        if not other.columns:
            return TopEvents(max(self.n, other.n), dict(self.columns), self.key)
        if not self.columns:
            return TopEvents(max(self.n, other.n), dict(other.columns), other.key)
        if set(self.columns) != set(other.columns) or self.key != other.key:
            raise ValueError(f"cannot add TopEvents with columns {sorted(self.columns)} and {sorted(other.columns)}")
        merged = {k: np.concatenate([np.asarray(self.columns[k]), np.asarray(other.columns[k])]) for k in self.columns}
        return TopEvents(max(self.n, other.n), merged, self.key)

    def to_pandas(self) -> Any:
        """The list as a ``pandas.DataFrame``, highest score first."""
        import pandas as pd

        return pd.DataFrame({k: np.asarray(v) for k, v in self.columns.items()})
