"""Clustered resampling and the two-way (sites x stimuli) bootstrap against explicit resampled lists."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.statistics import intervals
from precompute.statistics.resample import Clusters, stimulus_count_chunks, weighted_median


def test_weighted_median_is_the_median_of_the_repeated_values():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 9))
    values[rng.random(values.shape) < 0.1] = np.nan
    weights = rng.integers(0, 4, size=values.shape).astype(float)
    got = weighted_median(values, weights)
    for v, w, g in zip(values, weights, got, strict=True):
        keep = np.isfinite(v)
        repeated = np.repeat(v[keep], w[keep].astype(int))
        assert (np.isnan(g) and repeated.size == 0) or g == pytest.approx(np.median(repeated))


def test_iid_clusters_draw_exactly_the_ordinary_bootstrap():
    a = np.concatenate(list(Clusters.iid(30).counts(300, np.random.default_rng(4))))
    b = np.concatenate(list(stimulus_count_chunks(30, 300, np.random.default_rng(4))))
    np.testing.assert_array_equal(a, b)


def test_hierarchical_counts_draw_clusters_then_members_within():
    labels = ["a"] * 3 + ["b"] * 5 + ["c"] * 2 + ["d"] * 6
    clusters = Clusters.from_labels(labels, "object")
    counts = np.concatenate(list(clusters.counts(4000, np.random.default_rng(1))))
    codes = clusters.codes
    sizes = np.bincount(codes)
    per_cluster = np.stack([counts[:, codes == c].sum(axis=1) for c in range(4)], axis=1)
    times = per_cluster / sizes  # how often each cluster was drawn: an integer in every resample
    assert np.allclose(times, np.round(times)) and (np.round(times).sum(axis=1) == 4).all()
    # a member is drawn only with its cluster, and on average once per resample
    assert np.allclose(counts.mean(axis=0), 1.0, atol=0.08)
    # the clusters are drawn uniformly: each is drawn once per resample on average, Binomial(4, 1/4)
    assert np.allclose(np.round(times).mean(axis=0), 1.0, atol=0.06)
    assert np.allclose(np.round(times).var(axis=0), 4 * 0.25 * 0.75, atol=0.1)
    assert clusters.describe("stimuli") == "stimuli by object (4 clusters, stimuli within)"
    assert Clusters.iid(7).describe("sites") == "sites i.i.d. (7)"


def test_two_way_bootstrap_equals_the_median_over_explicitly_resampled_sites_and_stimuli():
    rng = np.random.default_rng(2)
    n_sites, n_objects, views = 7, 5, 4
    n = n_objects * views
    responses = rng.normal(size=(n_sites, n))
    values = responses + rng.normal(scale=2.0, size=(n_sites, n))
    values[3, 5] = np.nan  # a unit without a value for one stimulus: that pair leaves it out
    train = np.zeros(n, bool)
    train[::3] = True
    stimuli = Clusters.from_labels([i // views for i in range(n)], "object")
    sites = Clusters.from_labels(["A"] * 3 + ["B"] * 4, "array")
    groups = [np.array([0, 1, 2, 3, 4, 5, 6])]
    got = intervals.bootstrap_medians(
        intervals.heldout_r_under(responses, values[None], train[None]),
        stimuli,
        groups,
        [sites],
        40,
        np.random.default_rng(9),
    )[:, 0]
    stim_rng, site_rng = np.random.default_rng(9).spawn(2)
    stim_counts = np.concatenate(list(stimuli.counts(40, stim_rng)))
    site_counts = np.concatenate(list(sites.counts(40, site_rng)))
    held = np.flatnonzero(~train)
    for g, sc, wc in zip(got, stim_counts, site_counts, strict=True):
        idx = np.repeat(held, sc[held].astype(int))  # the resampled held-out stimuli, repeats included
        r = []
        for i in range(n_sites):
            ok = idx[np.isfinite(values[i, idx])]
            r.append(np.corrcoef(responses[i, ok], values[i, ok])[0, 1] if len(set(ok.tolist())) >= 3 else np.nan)
        r = np.array(r)
        keep = np.isfinite(r)
        assert g == pytest.approx(np.median(np.repeat(r[keep], wc[keep].astype(int))))


def test_stimuli_only_bootstrap_keeps_every_site_once():
    rng = np.random.default_rng(3)
    responses = rng.normal(size=(5, 30))
    values = responses + rng.normal(size=(5, 30))
    stimuli = Clusters.iid(30)
    per_site = intervals.fixed_unit_r(responses, values)
    got = intervals.bootstrap_medians(per_site, stimuli, [np.arange(5)], None, 20, np.random.default_rng(0))[:, 0]
    stim_rng = np.random.default_rng(0).spawn(2)[0]
    for g, c in zip(got, np.concatenate(list(stimuli.counts(20, stim_rng))), strict=True):
        idx = np.repeat(np.arange(30), c.astype(int))
        assert g == pytest.approx(np.median([np.corrcoef(responses[i, idx], values[i, idx])[0, 1] for i in range(5)]))
