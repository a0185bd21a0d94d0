"""Runner-ups and feature-map counts against brute-force references on data the tests make."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from precompute.analyses import featuremaps as fm
from precompute.analyses import runnerups as ru


def test_runnerup_summary_against_reference():
    rng = np.random.default_rng(0)
    rows = []
    ref = {}
    for s in range(5):
        r = np.sort(rng.uniform(0.2, 0.8, size=20))[::-1]
        rows += [(f"s{s}", k + 1, v) for k, v in enumerate(r)]
        ref[f"s{s}"] = (r[0], r[0] - r[1], np.median(r), sum(1 for v in r[1:] if v >= r[0] - 0.05))
    got = ru.runnerup_summary(pd.DataFrame(rows, columns=["site_id", "rank", "r"]).sample(frac=1, random_state=1))
    for row in got.itertuples(index=False):
        best, gap, med, within = ref[row.site_id]
        assert row.best_r == pytest.approx(best) and row.gap == pytest.approx(gap)
        assert row.median_r == pytest.approx(med) and row.n_within_0_05 == within


def test_featuremap_counts_against_reference():
    rng = np.random.default_rng(1)
    sites = pd.DataFrame({"site_id": [f"s{i}" for i in range(6)], "region": ["V4"] * 3 + ["IT"] * 3})
    rows = []
    for s in sites["site_id"]:
        for layer in (0, 1):
            for rank in range(1, 5):
                rows.append((s, layer, rank, int(rng.integers(0, 3)), int(rng.integers(0, 2)), int(rng.integers(0, 4))))
    lm = pd.DataFrame(rows, columns=["site_id", "layer_idx", "rank", "channel", "y", "x"])
    got = fm.featuremap_counts(lm, sites)
    merged = lm.merge(sites, on="site_id")
    for (region, layer, top, axis), g in got.groupby(["region", "layer_idx", "top", "axis"]):
        sel = merged[(merged["region"] == region) & (merged["layer_idx"] == layer)]
        if top == "1":
            sel = sel[sel["rank"] == 1]
        ref = sel[axis].value_counts()
        assert dict(zip(g["index"], g["count"], strict=True)) == ref.to_dict()
        if top == "1":
            assert g["count"].sum() == 3  # one best unit per site


def test_featuremap_validation_best_site_and_threshold_counts():
    sites = pd.DataFrame({"site_id": ["a", "b", "c"], "region": ["V4"] * 3})
    fmr = pd.DataFrame(
        {
            "site_id": ["a", "b", "c", "a", "b", "c"],
            "layer_idx": [0] * 6,
            "channel": [0, 0, 0, 1, 1, 1],
            "r": [0.35, 0.55, 0.45, 0.1, 0.2, 0.61],
        }
    )
    got = fm.featuremap_validation(fmr, sites).set_index("channel")
    assert got.loc[0, "best_site_id"] == "b" and got.loc[0, "best_r"] == pytest.approx(0.55)
    assert (got.loc[0, "n_above_0_3"], got.loc[0, "n_above_0_4"], got.loc[0, "n_above_0_5"]) == (3, 2, 1)
    assert got.loc[1, "n_above_0_6"] == 1 and got.loc[1, "n_above_0_3"] == 1


def test_runnerups_and_featuremaps_analyses_write_their_tables(results_env):
    from precompute.analyses.registry import get_analyses
    from precompute.jobs.analyze import run_analysis

    for analysis in get_analyses(["runnerups", "featuremaps"]):
        assert run_analysis(results_env, analysis, "mini", "toy")
    with results_env.connect() as con:
        run = con.execute("SELECT * FROM runnerups WHERE model = 'toy'").df()
        best = con.execute("SELECT site_id, r FROM matches WHERE model = 'toy' AND rank = 1").df()
        counts = con.execute("SELECT * FROM featuremap_counts WHERE model = 'toy'").df()
        n_sites = con.execute("SELECT count(*) FROM sites WHERE dataset = 'mini'").fetchone()[0]
    whole = run[run["scope"] == "model"].merge(best, on="site_id")
    np.testing.assert_allclose(whole["best_r"], whole["r"], atol=1e-6)
    assert run.loc[run["scope"] == "layer", "layer_idx"].notna().all()
    assert len(run) == 2 * n_sites
    one = counts[(counts["top"] == "1") & (counts["axis"] == "channel")]
    assert (one.groupby("layer_idx")["count"].sum() == n_sites).all()
