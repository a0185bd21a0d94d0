"""The null for the maximum: permuted copies in the statistics pass, permutation p-values, BH q-values."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.core.feeds import ArrayFeed
from precompute.statistics.null import benjamini_hochberg, max_null_p_values
from precompute.statistics.streaming_pass import PassSpec, build_rows, run_pass
from tests.support.sources import SyntheticSource

SHAPES = [(4, 5, 5), (8,), (6, 3, 3)]
N_STIM = 80


def test_p_values_count_draws_at_least_as_high():
    draws = np.array([[0.1, 0.5, 0.3], [0.5, np.nan, 0.2]])  # 5 finite draws
    p = max_null_p_values(np.array([0.5, 0.05, 0.9, np.nan, 0.3]), draws)
    ref = [(1 + 2) / 6, (1 + 5) / 6, 1 / 6, np.nan, (1 + 3) / 6]
    np.testing.assert_allclose(p, ref)
    rng = np.random.default_rng(0)
    obs, d = rng.normal(size=50), rng.normal(size=300)
    brute = [(1 + (d >= o).sum()) / (1 + d.size) for o in obs]
    np.testing.assert_allclose(max_null_p_values(obs, d), brute)


def test_benjamini_hochberg_matches_the_textbook_step_up_and_scipy():
    from scipy.stats import false_discovery_control

    rng = np.random.default_rng(1)
    p = np.concatenate([rng.uniform(size=30), rng.uniform(0, 0.01, size=10)])
    q = benjamini_hochberg(p)
    np.testing.assert_allclose(q, false_discovery_control(p, method="bh"), rtol=1e-12)
    # textbook: q_i = min over j with p_j >= p_i of p_j * m / rank_j
    m = len(p)
    ranks = np.argsort(np.argsort(p)) + 1
    ref = [min(min(p[j] * m / ranks[j] for j in range(m) if p[j] >= p[i]), 1.0) for i in range(m)]
    np.testing.assert_allclose(q, ref, rtol=1e-12)
    with_nan = benjamini_hochberg(np.array([0.01, np.nan, 0.04]))
    np.testing.assert_allclose(with_nan, [0.02, np.nan, 0.04])


def test_permuted_copies_give_the_brute_force_null_maximum_and_planted_sites_behave():
    rng = np.random.default_rng(3)
    feed = ArrayFeed(
        [f"s{i:03d}" for i in range(N_STIM)], [rng.integers(0, 256, (16, 16), dtype=np.uint8) for _ in range(N_STIM)]
    )
    source = SyntheticSource(SHAPES, seed=2)
    acts = np.concatenate(
        [o.reshape(N_STIM, -1) for o in source.activations(feed.images, feed.stimulus_ids)], axis=1
    ).astype(np.float64)
    resp = rng.normal(size=(12, N_STIM))
    resp[0] = 2 * acts[:, 40] - 1  # a site copied from a unit
    spec = PassSpec({}, n_permutations=3, seed=11)
    result = run_pass(source, feed, resp, spec)
    assert result.null_max.shape == (3, 12)
    # the same rows the pass built (same seed), brute force in float64
    rows, layout = build_rows(resp, spec, np.random.default_rng([11, 7]))
    ac = acts - acts.mean(0)
    sd = np.sqrt((ac**2).sum(0))
    ok = np.ptp(acts, axis=0) > 0
    for p in range(3):
        for s in range(12):
            y = rows.values[layout.perm_row(p, s)]
            assert sorted(y) == pytest.approx(sorted(resp[s]))  # a permutation of the site's responses
            yc = y - y.mean()
            r = yc @ ac[:, ok] / (np.sqrt((yc**2).sum()) * sd[ok])
            assert result.null_max[p, s] == pytest.approx(r.max(), abs=1e-4)
    # observed in-sample maxima
    obs = np.array([max(np.corrcoef(y, acts[:, u])[0, 1] for u in np.flatnonzero(ok)) for y in resp])
    p_val = max_null_p_values(obs, result.null_max)
    assert p_val[0] == pytest.approx(1 / 37)  # the planted copy beats every null draw: the resolution
    assert np.median(p_val[1:]) > 0.2  # pure-noise sites: their maxima look like null draws
    assert benjamini_hochberg(p_val)[0] < 0.5
