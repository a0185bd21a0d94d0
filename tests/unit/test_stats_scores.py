"""Per-layer statistics (best layer and its score) vs brute force; the whole-model score's two-way interval is
tested in test_stats_intervals.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from precompute.statistics.resample import Clusters
from precompute.statistics.scores import layer_matrix, layer_statistics


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


def test_layer_statistics_resample_clustered_sites_together():
    """With two arrays whose sites differ, the hierarchical bootstrap (arrays, then sites within) gives a wider
    interval than resampling the sites as independent."""
    rng = np.random.default_rng(5)
    m = np.concatenate([rng.normal(0.3, 0.1, size=(30, 2)), rng.normal(0.45, 0.1, size=(30, 2))])
    arrays = Clusters.from_labels(["A"] * 30 + ["B"] * 30, "array")
    iid = layer_statistics(m, 1000, np.random.default_rng(0))
    clustered = layer_statistics(m, 1000, np.random.default_rng(0), clusters=arrays)
    assert (clustered.ci_high - clustered.ci_low > 1.5 * (iid.ci_high - iid.ci_low)).all()
