"""PLS linear predictivity and the sparse random projection that feeds it."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.core.feeds import ArrayFeed
from precompute.datasets.folds import assign_folds
from precompute.statistics.pls import pls_heldout_r
from precompute.statistics.projection import ProjectingSource, sparse_projection
from precompute.statistics.streaming_pass import PassSpec, run_pass
from tests.support.sources import SyntheticSource


def shuffle_splits(strata, n: int, n_splits: int, test_size: float, rng) -> np.ndarray:
    """n_splits training masks, each leaving out one fold of round(1 / test_size) stratified folds."""
    fold = assign_folds(strata, n, round(1 / test_size), rng)
    return np.stack([fold != f for f in range(n_splits)])


def test_pls_heldout_r_is_the_per_split_pearson_of_a_25_component_fit():
    from sklearn.cross_decomposition import PLSRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 40))
    y = x[:, :5] @ rng.normal(size=(5, 6)) + rng.normal(size=(200, 6))
    masks = shuffle_splits([i % 10 for i in range(200)], 200, 3, 0.1, rng)
    got = pls_heldout_r(x, y, masks)
    assert got.shape == (3, 6)
    for t, m in enumerate(masks):
        pred = PLSRegression(n_components=25, scale=False).fit(x[m], y[m]).predict(x[~m])
        for j in range(6):
            assert got[t, j] == pytest.approx(np.corrcoef(pred[:, j], y[~m, j])[0, 1], abs=1e-9)


def test_features_of_lower_rank_than_the_components_are_fitted_with_as_many_components_as_their_rank():
    """A layer with few live units (1,000 projected features of rank 1 here) made scikit-learn fail on NaN."""
    from sklearn.cross_decomposition import PLSRegression

    rng = np.random.default_rng(2)
    live = rng.normal(size=(40, 1))
    x = live @ rng.normal(size=(1, 1000))
    y = np.concatenate([3 * live + 0.1 * rng.normal(size=(40, 1)), rng.normal(size=(40, 3))], axis=1)
    masks = shuffle_splits(None, 40, 4, 0.2, rng)
    got = pls_heldout_r(x, y, masks)
    assert np.isfinite(got).all()
    for t, m in enumerate(masks):
        pred = PLSRegression(n_components=1, scale=False).fit(x[m], y[m]).predict(x[~m])
        for j in range(4):
            assert got[t, j] == pytest.approx(np.corrcoef(pred[:, j], y[~m, j])[0, 1], abs=1e-9)
    assert got[:, 0].min() > 0.95
    # constant features: nothing to fit, every split left out (NaN), no exception
    assert np.isnan(pls_heldout_r(np.ones((40, 30)), y, masks)).all()


def test_planted_linear_site_is_predicted_and_a_noise_site_is_not():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 30))
    y = np.stack([x @ rng.normal(size=30), rng.normal(size=300)], axis=1)
    r = pls_heldout_r(x, y, shuffle_splits(None, 300, 5, 0.1, rng))
    assert r[:, 0].min() > 0.99
    assert abs(r[:, 1].mean()) < 0.25


def test_sparse_projection_is_seeded_sparse_and_preserves_inner_products():
    units, dim = 2500, 400
    a = sparse_projection(units, dim, seed=3)
    b = sparse_projection(units, dim, seed=3)
    assert a.shape == (dim, units) and (a != b).nnz == 0
    assert a.nnz <= dim * 50 and a.nnz > dim * 40  # ~sqrt(units) non-zeros per feature
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, units))
    px = (a @ x.T).T
    gram, pgram = x @ x.T, px @ px.T
    # Johnson-Lindenstrauss: squared norms kept within ~3/sqrt(dim) relative error
    np.testing.assert_allclose(np.diag(pgram), np.diag(gram), rtol=0.25)


def test_projecting_source_equals_the_dense_projection_of_each_stimulus():
    rng = np.random.default_rng(4)
    n = 40
    feed = ArrayFeed([f"s{i}" for i in range(n)], [rng.integers(0, 256, (16, 16), dtype=np.uint8) for _ in range(n)])
    source = SyntheticSource([(4, 5, 5), (8,), (6, 3, 3)], seed=1)
    acts = source.activations(feed.images, feed.stimulus_ids)
    resp = rng.normal(size=(3, n))
    result = run_pass(
        source, feed, resp, PassSpec({}, n_permutations=1, projection_layers=(0, 2), projection_dim=16, seed=5)
    )
    for layer in (0, 2):
        dense = sparse_projection(source.layers[layer].units, 16, 5 + layer).toarray().astype(np.float64)
        ref = acts[layer].reshape(n, -1).astype(np.float64) @ dense.T
        np.testing.assert_allclose(result.projections[layer], ref, rtol=1e-4, atol=1e-4)
    tap = ProjectingSource(source, feed.stimulus_ids, [1], 4, 0)
    assert tap.missing() == [1]  # not seen yet: a pass that skips a layer is detected
