"""Paired comparison of two models: median paired difference, two-way cluster-bootstrap interval and p, Holm."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from precompute.statistics import intervals
from precompute.statistics.comparisons import bootstrap_p, holm, paired_difference
from precompute.statistics.resample import Clusters


def test_holm_equals_the_step_down_definition():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.2])
    got = holm(p)
    finite = [0.01, 0.04, 0.03, 0.2]
    m = len(finite)
    order = np.argsort(finite)
    ref = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):  # p_(i) * (m - i), made monotone, capped at 1
        running = max(running, finite[i] * (m - rank))
        ref[i] = min(1.0, running)
    assert np.isnan(got[2]) and got[[0, 1, 3, 4]] == pytest.approx(ref)


def test_bootstrap_p_is_twice_the_smaller_tail_with_a_floor():
    assert bootstrap_p(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(0.5)
    assert bootstrap_p(np.arange(1.0, 101.0)) == pytest.approx(0.01)  # never 0: 1 / resamples
    assert bootstrap_p(np.array([0.0, 0.0])) == 1.0 and np.isnan(bootstrap_p(np.array([np.nan])))


def _world(seed: int, n_sites: int = 30, n_objects: int = 12, views: int = 8):
    rng = np.random.default_rng(seed)
    n = n_objects * views
    latent = rng.normal(size=(3, n))
    responses = rng.normal(size=(n_sites, 3)) @ latent + rng.normal(size=(n_sites, n))
    objects = Clusters.from_labels([f"o{i // views}" for i in range(n)], "object")
    arrays = Clusters.from_labels(["A"] * (n_sites // 2) + ["B"] * (n_sites - n_sites // 2), "array")
    return rng, responses, objects, arrays


def test_paired_difference_equals_brute_force_over_resampled_lists():
    rng, responses, objects, arrays = _world(0, n_sites=8, n_objects=6, views=5)
    a = responses + rng.normal(scale=1.5, size=responses.shape)
    b = responses + rng.normal(scale=2.5, size=responses.shape)
    scored = np.ones(responses.shape[1], bool)
    under_a = intervals.heldout_r_under(responses, a[None], ~scored[None])
    under_b = intervals.heldout_r_under(responses, b[None], ~scored[None])
    point_a = np.array([np.corrcoef(responses[i], a[i])[0, 1] for i in range(8)])
    point_b = np.array([np.corrcoef(responses[i], b[i])[0, 1] for i in range(8)])
    diff, lo, hi, p = paired_difference(
        under_a, under_b, point_a, point_b, objects, arrays, 60, np.random.default_rng(3)
    )
    # the same draws, then the statistic from the explicit resampled lists
    stim_rng, site_rng = np.random.default_rng(3).spawn(2)
    stim_counts = np.concatenate(list(objects.counts(60, stim_rng)))
    site_counts = np.concatenate(list(arrays.counts(60, site_rng)))
    boot = []
    for sc, wc in zip(stim_counts, site_counts, strict=True):
        idx = np.repeat(np.arange(responses.shape[1]), sc.astype(int))
        d = [
            np.corrcoef(responses[i, idx], a[i, idx])[0, 1] - np.corrcoef(responses[i, idx], b[i, idx])[0, 1]
            for i in range(8)
        ]
        boot.append(np.median(np.repeat(d, wc.astype(int))))
    assert diff == pytest.approx(np.median(point_a - point_b))
    assert (lo, hi) == pytest.approx((np.percentile(boot, 2.5), np.percentile(boot, 97.5)))
    assert p == pytest.approx(bootstrap_p(np.array(boot)))


def test_a_planted_better_model_wins_and_equal_models_do_not():
    rng, responses, objects, arrays = _world(1)
    scored = np.ones(responses.shape[1], bool)

    def model(noise):
        v = responses + rng.normal(scale=noise, size=responses.shape)
        r = np.array([np.corrcoef(responses[i], v[i])[0, 1] for i in range(len(v))])
        return intervals.heldout_r_under(responses, v[None], ~scored[None]), r

    good, weak, weak2 = model(1.0), model(3.0), model(3.0)
    diff, lo, hi, p = paired_difference(
        *good[:1], *weak[:1], good[1], weak[1], objects, arrays, 400, np.random.default_rng(0)
    )
    assert diff > 0.1 and lo > 0 and p < 0.01
    diff0, lo0, hi0, p0 = paired_difference(
        weak[0], weak2[0], weak[1], weak2[1], objects, arrays, 400, np.random.default_rng(0)
    )
    assert lo0 < 0 < hi0 and p0 > 0.05
    assert paired_difference(weak[0], weak[0], weak[1], weak[1], objects, arrays, 10, np.random.default_rng(0)) == (
        0.0,
        0.0,
        0.0,
        1.0,
    )


def test_holm_controls_the_family_of_all_pairs():
    """15 pairs of 6 equivalent models: no adjusted p below 0.05 (the family-wise error is what Holm bounds)."""
    rng, responses, objects, arrays = _world(2)
    scored = np.ones(responses.shape[1], bool)
    models = []
    for _ in range(6):
        v = responses + rng.normal(scale=3.0, size=responses.shape)
        r = np.array([np.corrcoef(responses[i], v[i])[0, 1] for i in range(len(v))])
        models.append((intervals.heldout_r_under(responses, v[None], ~scored[None]), r))
    ps = [
        paired_difference(a[0], b[0], a[1], b[1], objects, arrays, 200, np.random.default_rng(k))[3]
        for k, (a, b) in enumerate(itertools.combinations(models, 2))
    ]
    assert len(ps) == 15 and (holm(np.array(ps)) >= 0.05).all()
