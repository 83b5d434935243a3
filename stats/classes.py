"""One global significance over event classes and their distributions (MUSiC's p-tilde).

The model-agnostic searches sort events into exclusive classes by their final state and compare data
with the background prediction in several distributions per class (CMS MUSiC, Eur. Phys. J. C 81
(2021) 629, sec. 6; ATLAS general search, Eur. Phys. J. C 79 (2019) 120, sec. 7):

1. **Region of interest.** In each class and distribution every window of contiguous bins at least
   ``min_width`` wide whose expected yield reaches ``min_yield`` is a candidate; its local p-value is
   the probability of at least the observed count under a Poisson whose mean is convolved with the
   background's uncertainty (a distribution named in ``upper_tails``: only the windows that reach its
   last bin). The convolution uses a Gamma of the window's expected mean and variance, so
   the count is negative binomial (a Poisson where the variance is 0). The region is the window of
   smallest p. Only excesses are scanned. A class whose whole expectation is below ``min_yield`` (but
   above 0) is one region, all its bins: a class the background model barely populates is tested by its
   count instead of not at all.
   **Background processes without a simulated event in such a class.** That the simulation puts no event
   of a process in the class says only that the process's yield there is small compared with one event of
   its weight. Given ``process_expected`` (each process's expected yield per bin) and ``process_weight``
   (its effective event weight, sum w^2 / sum w), each process without a simulated event in the class adds
   the yield that a Poisson count of 0 simulated events leaves for it with a flat prior: a Gamma of shape
   1 and scale w (the conditional on/off test of Cousins, Linnemann and Tucker, NIM A 595 (2008) 480, for
   no "off" event), in the local p-value and in the pseudo-experiments alike. Without it, a class that the
   simulation fills with one event of a rare process (weight 1e-5) while the process that makes it was not
   simulated there tests one observed event against 1e-5 expected. Windows need no such term: each
   holds at least ``min_yield`` expected events, the minimum region yield that MUSiC requires of a region
   for the same reason.
2. **p-tilde.** Pseudo-experiments draw each bin's mean from that Gamma, then a Poisson count, in every
   class at once. Each one is scanned like the data. The p-tilde of a class and distribution is the
   fraction of pseudo-experiments whose smallest p is at most the observed one, counted as
   ``(n_le + 1)/(N + 1)``.
3. **Global.** The smallest p-tilde over classes x distributions is compared with the smallest p-tilde
   of every pseudo-experiment. A pseudo-experiment's p-tilde comes from the same pseudo-experiments'
   smallest-p distribution of that class, as MUSiC does, so one set of pseudo-experiments does both.
   The observation and the N pseudo-experiments are exchangeable under the background-only
   hypothesis, so both ranks count all N + 1. A p-tilde resolves 1/(N + 1); rows with the same smallest
   p-tilde are ordered by their smallest local p (the same statistic on every row, so the p-value stays
   valid): without it the global p-value, over K class x distribution pairs, could not go below about
   K/(N + 1) however large the excess.

Bins are drawn independently: correlations of the background's uncertainty between bins, classes or
distributions are not modelled.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
from cms_anomaly.stats._common import StatisticsError
from cms_anomaly.stats.significance import z_from_p

#: quantiles of the expected sorted p-tilde values: the median and the 68 % and 95 % bands
BAND_QUANTILES: tuple[float, ...] = (0.025, 0.16, 0.5, 0.84, 0.975)
_BLOCK = 500  # pseudo-experiments per block: bounds the memory of (block, windows)


@dataclass(frozen=True)
class ClassRegion:
    """The region of interest of one class in one distribution."""

    distribution: str
    #: (start, stop) bin range, or None where no window reaches the minimum width and yield
    region: tuple[int, int] | None
    observed: float
    expected: float
    expected_error: float
    #: the part of ``expected`` from background processes without a simulated event in a class scanned as one
    #: region (module docstring)
    unsimulated: float
    #: local p-value of the region (1 without a region)
    p: float
    p_tilde: float


@dataclass(frozen=True)
class ClassResult:
    """A class's most significant distribution (smallest p-tilde) and every distribution's region."""

    name: str
    distribution: str
    region: tuple[int, int] | None
    p: float
    p_tilde: float
    per_distribution: dict[str, ClassRegion]


@dataclass(frozen=True)
class ExpectedPTilde:
    """Observed p-tilde values of one distribution over the classes, sorted ascending, and the
    expectation from the pseudo-experiments at each rank (rows: :data:`BAND_QUANTILES`)."""

    classes: list[str]
    observed_sorted: np.ndarray
    quantiles: np.ndarray


@dataclass(frozen=True)
class ClassScanResult:
    """Every class (sorted by p-tilde), the smallest p-tilde and its global p-value."""

    classes: list[ClassResult]
    p_tilde_min: float
    p_global: float
    z_global: float
    n_pe: int
    #: per distribution name, the p-tilde over classes against its expectation
    expected: dict[str, ExpectedPTilde]


def _windows(
    b: np.ndarray, *, min_width: int, min_yield: float, upper_tail: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Starts and stops of every window (``upper_tail``: every window that ends at the last bin) of
    >= ``min_width`` bins with expected yield >= ``min_yield``; where none reaches it but the class
    expects events, the whole class as one window."""
    m = b.size
    if upper_tail:
        start = np.arange(max(m - max(int(min_width), 1) + 1, 0))
        stop = np.full(start.size, m)
    else:
        start, stop = np.triu_indices(m + 1, k=max(int(min_width), 1))
    cs = np.concatenate([[0.0], np.cumsum(b)])
    keep = cs[stop] - cs[start] >= min_yield
    if not keep.any() and cs[-1] > 0:
        return np.array([0]), np.array([m])
    return start[keep], stop[keep]


def local_p(n: np.ndarray, b: np.ndarray, b_var: np.ndarray) -> np.ndarray:
    """P(N >= n) for N Poisson with a Gamma-distributed mean (mean ``b`` > 0, variance ``b_var`` >= 0).

    The negative binomial with ``r = b^2/b_var`` and success probability ``b/(b + b_var)``; the
    Poisson where ``b_var`` is 0. Element-wise on broadcast arrays; 1 where ``n`` <= 0.
    """
    from scipy.special import betainc, gammainc

    n, b, b_var = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (n, b, b_var)))
    has = b_var > 0
    pos = n > 0
    n1 = np.where(pos, n, 1.0)
    r = np.where(has, b**2 / np.where(has, b_var, 1.0), 1.0)
    nb = betainc(n1, r, np.where(has, b_var / (b + np.where(has, b_var, 1.0)), 0.5))  # P(N >= n), N ~ NB
    return np.where(pos, np.where(has, nb, gammainc(n1, b)), 1.0)


def _window_sums(x: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    cs = np.concatenate([np.zeros((*x.shape[:-1], 1)), np.cumsum(x, axis=-1)], axis=-1)
    return cs[..., stop] - cs[..., start]


def unsimulated_weights(process_expected: np.ndarray, process_weight: np.ndarray) -> np.ndarray:
    """The effective event weights of the background processes without a simulated event in a class
    (``process_expected``: processes x bins); each adds a Gamma of shape 1 and scale its weight to the
    class's expectation (module docstring). Processes of weight 0 (no event anywhere) add nothing."""
    w = np.asarray(process_weight, dtype=np.float64)
    empty = np.asarray(process_expected, dtype=np.float64).sum(axis=-1) <= 0
    return w[empty & (w > 0)]


def pseudo_counts(rng: np.random.Generator, b: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """``(n, bins)`` background-only pseudo-experiment counts of 1-d expected yields ``b`` with variances
    ``v``: each bin's mean drawn from a Gamma of that mean and variance (the yield itself where the
    variance or the yield is 0), then a Poisson count."""
    has = (b > 0) & (v > 0)
    shape = np.where(has, b**2 / np.where(has, v, 1.0), 1.0)
    scale = np.where(has, v / np.where(has, b, 1.0), 0.0)
    mean = np.where(has, rng.gamma(shape, scale, size=(n, b.size)), b)
    return rng.poisson(np.maximum(mean, 0.0)).astype(np.float64)


def _pseudo_min_p(
    rng: np.random.Generator,
    b: np.ndarray,
    v: np.ndarray,
    win: tuple[np.ndarray, np.ndarray],
    unsimulated: np.ndarray,
    n_pe: int,
) -> np.ndarray:
    """Smallest window p of ``n_pe`` background-only pseudo-experiments (:func:`pseudo_counts`).
    ``unsimulated``: weights of the processes without a simulated event in a class scanned as one window,
    each a Gamma(1, w) mean of its own in every pseudo-experiment."""
    start, stop = win
    bw = _window_sums(b, start, stop) + unsimulated.sum()
    vw = _window_sums(v, start, stop) + (unsimulated**2).sum()
    out = np.empty(n_pe)
    for first in range(0, n_pe, _BLOCK):
        m = min(_BLOCK, n_pe - first)
        nw = _window_sums(pseudo_counts(rng, b, v, m), start, stop)
        if unsimulated.size:  # one window, the whole class
            nw = nw + rng.poisson(rng.gamma(1.0, unsimulated, size=(m, unsimulated.size)).sum(axis=1))[:, None]
        out[first : first + m] = local_p(nw, bw, vw).min(axis=1)
    return out


def _inputs(observed: Mapping, expected: Mapping, expected_var: Mapping) -> list[tuple[str, str]]:
    """The (class, distribution) pairs; a typed error on a missing entry or unequal shapes."""
    if not observed:
        raise StatisticsError("class_scan: no class")
    pairs = []
    for c, dists in observed.items():
        if c not in expected or c not in expected_var:
            raise StatisticsError(f"class_scan: class {c!r} has no expected yield or variance")
        for d, n in dists.items():
            b, v = expected[c].get(d), expected_var[c].get(d)
            if b is None or v is None:
                raise StatisticsError(f"class_scan: {c}/{d} has no expected yield or variance")
            shapes = {np.shape(n), np.shape(b), np.shape(v)}
            if len(shapes) != 1 or np.ndim(n) != 1:
                raise StatisticsError(f"class_scan: {c}/{d}: shapes {np.shape(n)}, {np.shape(b)}, {np.shape(v)}")
            if np.any(np.asarray(b) < 0) or np.any(np.asarray(v) < 0):
                raise StatisticsError(f"class_scan: {c}/{d}: negative expected yield or variance")
            pairs.append((c, d))
    return pairs


def _rank_p_tilde(mins: np.ndarray) -> np.ndarray:
    """p-tilde of every row (the observation and each pseudo-experiment) against all rows, per column:
    ``#{i: p_i <= p_j} / rows``; the rows are exchangeable under the background-only hypothesis."""
    srt = np.sort(mins, axis=0)
    ranks = [np.searchsorted(srt[:, k], mins[:, k], side="right") for k in range(mins.shape[1])]
    return np.stack(ranks, axis=1) / mins.shape[0]


def _region(
    d: str, n: np.ndarray, b: np.ndarray, v: np.ndarray, win: tuple, unsimulated: np.ndarray
) -> tuple[float, dict]:
    """The observed smallest window p of one class and distribution and its region's numbers."""
    start, stop = win
    if start.size == 0:
        zero = dict.fromkeys(("observed", "expected", "expected_error", "unsimulated"), 0.0)
        return 1.0, {"distribution": d, "region": None, **zero}
    nw, bw, vw = (_window_sums(a, start, stop) for a in (n, b, v))
    bw, vw = bw + unsimulated.sum(), vw + (unsimulated**2).sum()
    p = local_p(nw, bw, vw)
    i = int(np.argmin(p))
    return float(p[i]), {
        "distribution": d,
        "region": (int(start[i]), int(stop[i])),
        "observed": float(nw[i]),
        "expected": float(bw[i]),
        "expected_error": float(np.sqrt(vw[i])),
        "unsimulated": float(unsimulated.sum()),
    }


def class_scan(
    observed: Mapping[str, Mapping[str, np.ndarray]],
    expected: Mapping[str, Mapping[str, np.ndarray]],
    expected_var: Mapping[str, Mapping[str, np.ndarray]],
    *,
    n_pe: int,
    seed: int,
    min_width: int = 1,
    min_yield: float = 0.1,
    process_expected: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    process_weight: np.ndarray | None = None,
    upper_tails: Collection[str] = (),
) -> ClassScanResult:
    """Regions of interest, p-tilde per class and distribution, and the global p-value (module docstring).

    Parameters
    ----------
    observed, expected, expected_var
        Per class, per distribution: 1-d arrays over the same bins of the observed counts, the
        background's expected yield and that yield's variance (its uncertainty squared).
    n_pe, seed
        Background-only pseudo-experiments (of every class together) and their seed.
    min_width, min_yield
        The smallest window in bins and the smallest expected yield of a window.
    process_expected, process_weight
        Per class, per distribution: (processes, bins) expected yields of each background process, and
        each process's effective event weight: in a class scanned as one region, a process without a
        simulated event in it adds a Gamma(1, its weight) to the expectation (module docstring). Without
        them, nothing is added.
    upper_tails
        Distributions whose windows are upper tails only (from a bin to the last one): a score whose
        excess is expected at its high end (an anomaly detector's rarity).
    """
    pairs = _inputs(observed, expected, expected_var)
    if n_pe < 1 or min_yield <= 0:
        raise StatisticsError(f"class_scan needs n_pe >= 1 and min_yield > 0; got {n_pe}, {min_yield}")
    rng = np.random.default_rng(seed)
    mins = np.ones((n_pe + 1, len(pairs)))  # row 0: the observation; rows 1..: pseudo-experiments
    found = []
    for k, (c, d) in enumerate(pairs):
        n, b, v = (np.asarray(x[c][d], dtype=np.float64) for x in (observed, expected, expected_var))
        win = _windows(b, min_width=min_width, min_yield=min_yield, upper_tail=d in upper_tails)
        whole = win[0].size == 1 and win[0][0] == 0 and win[1][0] == b.size and b.sum() < min_yield
        extra = _unsimulated(process_expected, process_weight, c, d) if whole else np.zeros(0)
        mins[0, k], info = _region(d, n, b, v, win, extra)
        found.append(info)
        if win[0].size:
            mins[1:, k] = _pseudo_min_p(rng, b, v, win, extra, n_pe)
    p_tilde = _rank_p_tilde(mins)
    smallest = p_tilde.min(axis=1)
    local = mins.min(axis=1)  # ties at the p-tilde's resolution broken by the smallest local p
    p_global = float(np.mean((smallest < smallest[0]) | ((smallest == smallest[0]) & (local <= local[0]))))
    per_class: dict[str, dict[str, ClassRegion]] = {}
    for k, (c, d) in enumerate(pairs):
        per_class.setdefault(c, {})[d] = ClassRegion(p=float(mins[0, k]), p_tilde=float(p_tilde[0, k]), **found[k])
    classes = [_class_result(c, regions) for c, regions in per_class.items()]
    classes.sort(key=lambda r: (r.p_tilde, r.p))
    return ClassScanResult(
        classes=classes,
        p_tilde_min=float(smallest[0]),
        p_global=p_global,
        z_global=z_from_p(p_global),
        n_pe=n_pe,
        expected=_expected_bands(pairs, p_tilde),
    )


def _unsimulated(
    process_expected: Mapping[str, Mapping[str, np.ndarray]] | None,
    process_weight: np.ndarray | None,
    c: str,
    d: str,
) -> np.ndarray:
    """The weights of the processes without a simulated event in class ``c`` (:func:`unsimulated_weights`)."""
    if process_expected is None or process_weight is None:
        return np.zeros(0)
    found = process_expected.get(c, {}).get(d)
    if found is None:
        raise StatisticsError(f"class_scan: {c}/{d} has no per-process expected yields")
    pe = np.asarray(found, dtype=np.float64)
    if pe.ndim != 2 or pe.shape[0] != np.size(process_weight):
        raise StatisticsError(f"class_scan: {c}/{d}: process yields {pe.shape} for {np.size(process_weight)} weights")
    return unsimulated_weights(pe, np.asarray(process_weight))


def _class_result(name: str, regions: dict[str, ClassRegion]) -> ClassResult:
    best = min(regions.values(), key=lambda r: (r.p_tilde, r.p))
    return ClassResult(
        name=name,
        distribution=best.distribution,
        region=best.region,
        p=best.p,
        p_tilde=best.p_tilde,
        per_distribution=regions,
    )


def _expected_bands(pairs: list[tuple[str, str]], p_tilde: np.ndarray) -> dict[str, ExpectedPTilde]:
    """Per distribution name: the observed p-tilde over classes, sorted, and the quantiles of the
    pseudo-experiments' sorted p-tilde at each rank."""
    out = {}
    for d in dict.fromkeys(dd for _, dd in pairs):
        cols = [k for k, (_, dd) in enumerate(pairs) if dd == d]
        order = np.argsort(p_tilde[0, cols], kind="stable")
        out[d] = ExpectedPTilde(
            classes=[pairs[cols[i]][0] for i in order],
            observed_sorted=p_tilde[0, cols][order],
            quantiles=np.quantile(np.sort(p_tilde[1:, cols], axis=1), BAND_QUANTILES, axis=0),
        )
    return out
