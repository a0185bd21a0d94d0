"""Stimulus-bootstrap intervals of held-out r (split-half and neuron_to_neuron), against a brute force that
rebuilds every resampled stimulus list and calls np.corrcoef, and on planted sites."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from precompute.statistics.correlation import weighted_masked_pearson_rows
from precompute.statistics.crossval import heldout_bootstrap_medians, heldout_r, stimulus_interval_rows
from precompute.statistics.resample import stimulus_count_chunks
from precompute.statistics.splits import shuffle_splits, split_halves


def corr_or_nan(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan
    return float(np.corrcoef(x, y)[0, 1])


def brute_medians(resp, values, masks, groups, counts) -> np.ndarray:
    """(resamples, groups): for each resample, the list of drawn stimuli (each repeated by its count), every
    site's r per set on the drawn held-out stimuli where both are finite, mean over sets, median per group."""
    out = np.full((len(counts), len(groups)), np.nan)
    for b, c in enumerate(counts):
        drawn = np.repeat(np.arange(len(c)), c.astype(int))
        per_site = np.full(len(resp), np.nan)
        for s in range(len(resp)):
            rs = []
            for t, mask in enumerate(masks):
                idx = drawn[~mask[drawn]]
                idx = idx[np.isfinite(resp[s, idx]) & np.isfinite(values[t, s, idx])]
                if len(np.unique(idx)) >= 3:
                    rs.append(corr_or_nan(resp[s, idx], values[t, s, idx]))
            rs = [r for r in rs if np.isfinite(r)]
            if rs:
                per_site[s] = np.mean(rs)
        for g, idx in enumerate(groups):
            v = per_site[idx]
            v = v[np.isfinite(v)]
            out[b, g] = np.median(v) if len(v) else np.nan
    return out


def test_weighted_masked_pearson_rows_equals_corrcoef_on_the_resampled_list():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 30)), rng.normal(size=(4, 30))
    a[1, [2, 9]] = np.nan
    b[3] = np.nan  # a site without a unit
    counts = next(stimulus_count_chunks(30, 5, rng)) * (rng.random(30) < 0.6)[None, :]
    got = weighted_masked_pearson_rows(a, b, counts)
    assert got.shape == (5, 4)
    for k, c in enumerate(counts):
        drawn = np.repeat(np.arange(30), c.astype(int))
        for i in range(3):
            idx = drawn[np.isfinite(a[i, drawn])]
            assert got[k, i] == pytest.approx(np.corrcoef(a[i, idx], b[i, idx])[0, 1], abs=1e-10)
    assert np.isnan(got[:, 3]).all()
    # unit weights give the plain r; fewer than 3 distinct stimuli give none
    ones = weighted_masked_pearson_rows(a[:1], b[:1], np.ones((1, 30)))
    assert ones[0, 0] == pytest.approx(np.corrcoef(a[0], b[0])[0, 1], abs=1e-12)
    two = np.zeros((1, 30))
    two[0, [3, 4]] = 5
    assert np.isnan(weighted_masked_pearson_rows(a[:1], b[:1], two)).all()


@pytest.mark.parametrize("protocol", ["split_half", "n2n"])
def test_heldout_bootstrap_medians_equal_brute_force(protocol):
    rng = np.random.default_rng(1)
    n_sites, n_stim = 7, 40
    objects = [f"o{i % 4}" for i in range(n_stim)]
    masks = split_halves(objects, n_stim, 1, rng) if protocol == "split_half" else \
        shuffle_splits(objects, n_stim, 4, 0.25, rng)
    resp = rng.normal(size=(n_sites, n_stim))
    values = resp[None] * 0.5 + rng.normal(size=(len(masks), n_sites, n_stim))
    resp[2, [0, 5, 11]] = np.nan
    values[0, 4] = np.nan  # site 4 selected nothing on set 0
    groups = [np.array([0, 1, 2]), np.array([3, 4, 5, 6])]
    got = heldout_bootstrap_medians(resp, values, masks, groups, 30, np.random.default_rng(5))
    counts = next(stimulus_count_chunks(n_stim, 30, np.random.default_rng(5)))
    np.testing.assert_allclose(got, brute_medians(resp, values, masks, groups, counts), atol=1e-10)


def test_planted_sites_get_tight_intervals_near_one_and_noise_sites_include_zero():
    rng = np.random.default_rng(2)
    n_stim = 120
    masks = split_halves(None, n_stim, 1, rng)
    unit = rng.normal(size=(10, n_stim))
    resp = np.concatenate([3 * unit[:5] + 1, rng.normal(size=(5, n_stim))])  # 5 copies, 5 pure-noise sites
    values = np.broadcast_to(unit, (2, 10, n_stim)).copy()
    per_site = np.nanmean(heldout_r(resp, values, masks), axis=0)
    sites = pd.DataFrame({"site_id": [f"s{i}" for i in range(10)], "region": ["V4"] * 5 + ["IT"] * 5})
    rows = {r[0]: r for r in stimulus_interval_rows(sites, per_site, resp, values, masks, "m", 500,
                                                     np.random.default_rng(3))}
    _, _, v4, lo, hi = rows["V4"]
    assert v4 == pytest.approx(1.0) and lo > 0.999999
    _, _, it, lo, hi = rows["IT"]
    assert lo < 0 < hi and lo <= it <= hi and hi - lo < 0.6


def test_analyses_store_stimulus_intervals_beside_the_site_intervals(mini_db, monkeypatch):
    import precompute.statistics.streaming_pass as sp
    from precompute.analyze import run_analyses
    from tests.factories import write_toy_results
    from tests.unit.test_stats_crossval import ToySource

    write_toy_results(mini_db, model="toy")
    monkeypatch.setattr(sp, "open_model_source", lambda ctx: ToySource(24))
    monkeypatch.setattr(sp, "DEFAULT_PROJECTION_DIM", 8)
    run_analyses(mini_db, "mini", ["toy"], ["crossval", "heldout_split_half"])
    with mini_db.connect() as con:
        scores = con.execute("SELECT region, metric, value, ci_low, ci_high FROM scores WHERE model = 'toy'").df()
    for base in ("heldout_split_half", "heldout_n2n"):
        sites_ci = scores[scores.metric == base].set_index("region")
        stim_ci = scores[scores.metric == f"{base}_stimuli"].set_index("region")
        assert sorted(stim_ci.index) == ["IT", "V4"]
        for region in ("IT", "V4"):
            assert stim_ci.loc[region, "value"] == pytest.approx(sites_ci.loc[region, "value"])
            assert stim_ci.loc[region, "ci_low"] <= stim_ci.loc[region, "value"] <= stim_ci.loc[region, "ci_high"]
            assert stim_ci.loc[region, "ci_low"] < stim_ci.loc[region, "ci_high"]
