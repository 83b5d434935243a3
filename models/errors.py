"""Exception classes of the models package (messages name the file, column or value)."""

from __future__ import annotations

from cms_anomaly.processors.feature_io import FeatureTableError as _FeatureTableError


class ModelError(Exception):
    """Base class of every error raised by ``cms_anomaly.models``."""


class FeatureMismatchError(ModelError, ValueError):
    """The feature list of a model does not match the one offered by the caller.

    Parameters
    ----------
    expected : list of str
        Ordered feature names the model was trained on (from its model card).
    actual : list of str
        Ordered feature names the caller provides.
    source : str
        The model file or card the expectation comes from.
    """

    def __init__(self, *, expected: list[str], actual: list[str], source: str) -> None:
        self.expected = list(expected)
        self.actual = list(actual)
        self.source = source
        missing = [n for n in self.expected if n not in self.actual]
        extra = [n for n in self.actual if n not in self.expected]
        common_exp = [n for n in self.expected if n in self.actual]
        common_act = [n for n in self.actual if n in self.expected]
        misordered = [e for e, a in zip(common_exp, common_act, strict=True) if e != a]
        self.missing, self.extra, self.misordered = missing, extra, misordered
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"extra {extra}")
        if misordered:
            parts.append(f"misordered {misordered}")
        super().__init__(f"feature list does not match model {source}: " + "; ".join(parts))


class FeatureTableError(ModelError, _FeatureTableError, ValueError):
    """A feature table (parquet) is missing, empty or lacks a needed column.

    The models' case of :class:`cms_anomaly.processors.feature_io.FeatureTableError` (one concept:
    ``except feature_io.FeatureTableError`` catches both).
    """


class ModelCardError(ModelError, ValueError):
    """A model card is missing, unreadable or inconsistent with its model file."""


class TrainingError(ModelError, RuntimeError):
    """Training cannot proceed (e.g. too few events, non-finite loss)."""


class FeatureNeedsError(ModelError, ValueError):
    """No feature of a set can be computed on every dataset of a job (the message names them)."""
