"""Which events train a model and which evaluate it: a split by event identity.

CMS analyses that train on simulation split by event number (even events train, odd events
evaluate), so that any job, on any worker, knows an event's role without a list. This generalises
the parity: a uniform number ``u`` in [0, 1) from a 64-bit hash (splitmix64) of
(``run``, ``event``, ``seed``); the validation part is ``u < fraction`` and, for k-fold scoring,
the fold is ``floor(u * k)``. Training (:mod:`cms_anomaly.models.data`) and the processor's
histograms (the ``split`` axis) use the same function, so the events a model was trained on are
never counted as its evaluation sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele, Lea, Flood 2014), vectorised on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return z ^ (z >> np.uint64(31))


def event_uniform(run: np.ndarray, event: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """A number in [0, 1) per event, uniform over events and fixed by (run, event, seed)."""
    run = np.asarray(run).astype(np.uint64)
    event = np.asarray(event).astype(np.uint64)
    key = _splitmix64(_splitmix64(event) ^ _splitmix64(run ^ np.uint64(seed & 0xFFFFFFFF) << np.uint64(32)))
    return (key >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class EventSplit:
    """Validation part of a sample: the events with ``event_uniform(run, event, seed) < fraction``."""

    fraction: float = 0.5
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ValueError(f"EventSplit.fraction must be in (0, 1), got {self.fraction}")

    def is_validation(self, run: np.ndarray, event: np.ndarray) -> np.ndarray:
        return event_uniform(run, event, seed=self.seed) < self.fraction

    def labels(self, run: np.ndarray, event: np.ndarray) -> np.ndarray:
        """``validation`` / ``training`` per event (the processor's ``split`` axis)."""
        return np.where(self.is_validation(run, event), "validation", "training")


#: mixed into the seed of :class:`KFold`, so that the folds are independent of an
#: :class:`EventSplit` with the same seed (the early-stopping split inside each fold's training)
_KFOLD_SALT = 0x6B464F4C


@dataclass(frozen=True)
class KFold:
    """``k`` folds by event identity: fold = ``floor(k * event_uniform(run, event, seed'))``.

    Model ``i`` of a k-fold ensemble is trained on the events outside fold ``i`` and scores the
    events of fold ``i``, so every event of a sample is scored by a model that never saw it
    (the CWoLa-hunting scheme, Collins, Howe, Nachman, PRL 121 (2018) 241803).
    """

    k: int = 3
    seed: int = 1

    def __post_init__(self) -> None:
        if self.k < 2:
            raise ValueError(f"KFold.k must be >= 2, got {self.k}")

    def fold(self, run: np.ndarray, event: np.ndarray) -> np.ndarray:
        """The fold (0 .. k-1) of each event."""
        u = event_uniform(run, event, seed=self.seed ^ _KFOLD_SALT)
        return np.minimum((u * self.k).astype(np.int64), self.k - 1)
