"""Bootstrap machinery and exact correlations against brute-force float64 references."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.statistics.correlation import complete_stimuli, pearson_all, pearson_rows, weighted_pearson_rows
from precompute.statistics.resample import (
    Clusters,
    percentile_interval,
    rng_for,
    site_interval,
    stimulus_count_chunks,
)


def test_rng_for_depends_on_seed_and_keys_not_on_call_order():
    a = rng_for(0, "neural_correlation", "V4").random(3)
    assert np.array_equal(a, rng_for(0, "neural_correlation", "V4").random(3))
    assert not np.array_equal(a, rng_for(0, "neural_correlation", "IT").random(3))
    assert not np.array_equal(a, rng_for(1, "neural_correlation", "V4").random(3))


def test_percentile_interval_matches_numpy_and_ignores_nan():
    x = np.random.default_rng(0).normal(size=(500, 3))
    lo, hi = percentile_interval(x)
    assert np.allclose(lo, np.percentile(x, 2.5, axis=0)) and np.allclose(hi, np.percentile(x, 97.5, axis=0))
    x[:10, 0] = np.nan
    lo, _ = percentile_interval(x)
    assert lo[0] == pytest.approx(np.percentile(x[10:, 0], 2.5))


def test_site_interval_iid_equals_brute_force_site_bootstrap():
    values = np.random.default_rng(1).normal(0.4, 0.1, size=37)
    values[5] = np.nan  # a site without a match is left out, not counted as 0
    med, lo, hi, scheme = site_interval(values, Clusters.iid(37), 200, np.random.default_rng(7))
    finite = values[np.isfinite(values)]
    idx = np.random.default_rng(7).integers(0, finite.size, size=(200, finite.size))
    boot = np.array([np.median(finite[i]) for i in idx])
    assert med == pytest.approx(np.median(finite))
    assert lo == pytest.approx(np.percentile(boot, 2.5)) and hi == pytest.approx(np.percentile(boot, 97.5))
    assert lo <= med <= hi and scheme == "sites i.i.d. (36); 200 resamples"


def test_stimulus_count_chunks_are_resamples_with_replacement():
    chunks = list(stimulus_count_chunks(40, 600, np.random.default_rng(3)))
    counts = np.concatenate(chunks)
    assert counts.shape == (600, 40)
    assert np.all(counts.sum(axis=1) == 40) and np.all(counts >= 0)
    # each stimulus is drawn once per resample on average, and resamples differ
    assert abs(counts.mean() - 1.0) < 1e-12 and len({tuple(c) for c in counts}) == 600
    # about 1 - 1/e of the stimuli appear in a resample
    assert np.mean(counts > 0) == pytest.approx(1 - np.exp(-1), abs=0.02)


def test_pearson_rows_and_all_match_numpy_corrcoef():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(5, 30)), rng.normal(size=(7, 30))
    full = np.corrcoef(np.vstack([a, b]))[:5, 5:]
    assert np.allclose(pearson_all(a, b), full, atol=1e-12)
    assert np.allclose(pearson_rows(a, b[:5]), np.diag(full[:, :5]), atol=1e-12)
    b[2] = 3.0  # a constant unit has no r
    assert np.isnan(pearson_all(a, b)[:, 2]).all() and np.isfinite(pearson_all(a, b)[:, [0, 1, 3]]).all()


def test_weighted_pearson_rows_equals_r_over_the_resampled_stimulus_list():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(4, 25)) + 100.0  # an offset that would hurt naive one-pass sums
    b = a * 0.5 + rng.normal(size=(4, 25))
    counts = np.concatenate(list(stimulus_count_chunks(25, 20, rng)))
    got = weighted_pearson_rows(a, b, counts)
    for k, c in enumerate(counts):
        idx = np.repeat(np.arange(25), c.astype(int))
        ref = [np.corrcoef(a[i, idx], b[i, idx])[0, 1] for i in range(4)]
        assert np.allclose(got[k], ref, atol=1e-10)


def test_weighted_pearson_is_nan_when_a_resample_leaves_a_row_constant():
    a = np.array([[1.0, 2.0, 3.0, 4.0]])
    b = np.array([[0.0, 1.0, 0.0, 1.0]])
    w = np.array([[2.0, 0.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]])  # first: b is constant (0) on the draw
    got = weighted_pearson_rows(a, b, w)
    assert np.isnan(got[0, 0]) and got[1, 0] == pytest.approx(np.corrcoef(a[0], b[0])[0, 1])


def test_complete_stimuli_masks_columns_with_any_missing_response():
    x = np.ones((3, 4))
    x[1, 2] = np.nan
    assert complete_stimuli(x).tolist() == [True, True, False, True]
