"""Neural correlation statistics (whole model, per layer, best layer, stimulus bootstrap) vs brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from precompute.statistics.resample import stimulus_count_chunks
from precompute.statistics.scores import layer_matrix, layer_statistics, stimulus_bootstrap_median


def _brute_stimulus_bootstrap(resp, acts, n, seed):
    counts = np.concatenate(list(stimulus_count_chunks(resp.shape[1], n, np.random.default_rng(seed))))
    medians = []
    for c in counts:
        idx = np.repeat(np.arange(resp.shape[1]), c.astype(int))
        medians.append(np.median([np.corrcoef(resp[i, idx], acts[i, idx])[0, 1] for i in range(len(resp))]))
    point = np.median([np.corrcoef(resp[i], acts[i])[0, 1] for i in range(len(resp))])
    return point, np.percentile(medians, 2.5), np.percentile(medians, 97.5)


def test_stimulus_bootstrap_median_equals_brute_force():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(9, 40))
    resp = acts * rng.uniform(0.2, 1.0, size=(9, 1)) + rng.normal(size=(9, 40))
    got = stimulus_bootstrap_median(resp, acts, 300, np.random.default_rng(11))
    ref = _brute_stimulus_bootstrap(resp, acts, 300, 11)
    assert np.allclose(got, ref, atol=1e-10)
    assert got[1] < got[0] < got[2]


def test_stimulus_bootstrap_planted_copy_is_tight_and_noise_is_not():
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(15, 80))
    med, lo, hi = stimulus_bootstrap_median(2.0 * acts + 1.0, acts, 200, np.random.default_rng(0))
    assert med == pytest.approx(1.0) and lo > 0.999999
    med, lo, hi = stimulus_bootstrap_median(rng.normal(size=(15, 80)), acts, 200, np.random.default_rng(0))
    assert abs(med) < 0.2 and lo < 0 < hi


def test_stimulus_bootstrap_skips_sites_without_r():
    rng = np.random.default_rng(2)
    acts = rng.normal(size=(3, 30))
    resp = acts.copy()
    acts[1] = 1.0  # constant unit: that site has no r
    med, _, _ = stimulus_bootstrap_median(resp, acts, 50, np.random.default_rng(0))
    assert med == pytest.approx(1.0)


def _brute_layer_statistics(m, n, seed):
    idx = np.random.default_rng(seed).integers(0, m.shape[0], size=(n, m.shape[0]))
    boot = np.array([[np.nanmedian(m[i, j]) for j in range(m.shape[1])] for i in idx])
    median = np.array([np.nanmedian(m[:, j]) for j in range(m.shape[1])])
    best_b = [int(np.nanargmax(b)) for b in boot]
    max_b = [np.nanmax(b) for b in boot]
    return median, boot, best_b, max_b


def test_layer_statistics_equals_brute_force():
    rng = np.random.default_rng(3)
    m = rng.normal(0.3, 0.1, size=(30, 5))
    m[:, 3] += 0.15  # layer 3 is the best
    m[4, 1] = np.nan  # a site without a match in layer 1
    stats = layer_statistics(m, 250, np.random.default_rng(9))
    median, boot, best_b, max_b = _brute_layer_statistics(m, 250, 9)
    assert np.allclose(stats.median, median)
    assert np.allclose(stats.ci_low, np.percentile(boot, 2.5, axis=0))
    assert np.allclose(stats.ci_high, np.percentile(boot, 97.5, axis=0))
    assert stats.best_layer == 3 and stats.best_score == pytest.approx(median[3])
    assert stats.best_layer_ci == pytest.approx((np.percentile(best_b, 2.5), np.percentile(best_b, 97.5)))
    assert stats.best_score_ci == pytest.approx((np.percentile(max_b, 2.5), np.percentile(max_b, 97.5)))
    # the best-layer interval accounts for picking the maximum: never below the fixed layer's
    assert stats.best_score_ci[0] >= stats.ci_low[3] - 1e-12


def test_layer_statistics_ties_pick_the_earliest_layer_and_all_nan_has_no_best():
    m = np.full((6, 3), 0.5)
    assert layer_statistics(m, 20, np.random.default_rng(0)).best_layer == 0
    stats = layer_statistics(np.full((4, 2), np.nan), 20, np.random.default_rng(0))
    assert stats.best_layer == -1 and np.isnan(stats.best_score)


def test_layer_matrix_aligns_by_id():
    rows = pd.DataFrame({"site_id": ["b", "a", "a", "zz"], "layer_idx": [2, 0, 2, 0], "r": [0.1, 0.2, 0.3, 0.9]})
    m = layer_matrix(rows, ["a", "b"], [0, 1, 2])
    assert np.allclose(m, [[0.2, np.nan, 0.3], [np.nan, np.nan, 0.1]], equal_nan=True)
