"""The processor's histograms equal the committed reference, bin by bin (AGC-style validation).

On a failure the message names the dataset, the histogram and the first differing bins. If the
change of physics is intended, rewrite the reference with ``python tests/reference/histograms.py``
and commit the diff for review.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from reference import histograms as ref


@pytest.fixture(scope="module")
def fresh(real_nanoaod_files, generated_cocktail):
    return ref.as_table(ref.run(ref.fileset(real_nanoaod_files, generated_cocktail)))


@pytest.fixture(scope="module")
def stored():
    return json.loads(ref.REFERENCE.read_text())


def test_reference_covers_every_dataset_and_histogram(fresh, stored):
    assert set(stored) == set(ref.REAL) | set(ref.GENERATED)
    for dataset in stored:
        assert set(fresh[dataset]) == set(stored[dataset]), dataset
        # the reference is not empty: every event of every dataset is in its cut-flow and MET histograms
        assert sum(stored[dataset]["cutflow"]["values"]) > 0
        assert sum(stored[dataset]["met"]["values"]) != 0


@pytest.mark.parametrize("dataset", [*ref.REAL, *ref.GENERATED])
def test_histograms_equal_the_reference(fresh, stored, dataset):
    diffs = []
    for name, expected in stored[dataset].items():
        got = fresh[dataset][name]
        for key in ("values", "variances"):
            a, b = np.asarray(got[key]), np.asarray(expected[key])
            if a.shape != b.shape:
                diffs.append(f"{name}: {key} shape {a.shape} != reference {b.shape}")
                continue
            bad = np.flatnonzero(~np.isclose(a, b, rtol=1e-8, atol=1e-9))
            if bad.size:
                diffs.append(
                    f"{name}: {bad.size} {key} differ, e.g. flat bin {bad[0]}: {a[bad[0]]:.6g} "
                    f"(reference {b[bad[0]]:.6g})"
                )
    assert not diffs, (
        f"{dataset}: the processor's histograms changed (rerun `python tests/reference/histograms.py` "
        "if intended):\n" + "\n".join(diffs)
    )
