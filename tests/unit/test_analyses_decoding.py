"""Linear-SVM decoding: high on separable data, chance on shuffled labels, training-data z-scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.analyses import decoders
from precompute.analyses import decoding as dec

FAST = decoders.Protocol(runs_within=4, runs_transfer=2, cv_splits=3, c_grid=(0.01, 1.0), per_run_c=True)


def _blobs(n_per=40, n_classes=8, dim=20, sep=3.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * sep
    y = np.repeat(np.arange(n_classes), n_per)
    x = centres[y] + rng.normal(size=(len(y), dim))
    return x, y


def test_stratified_split_is_balanced_and_disjoint():
    y = np.repeat(np.arange(8), 30)
    tr, te = decoders.stratified_split(y, 0.1, np.random.default_rng(0))
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(y)
    assert np.all(np.bincount(y[te]) == 3)


def test_decoder_is_high_on_separable_data():
    x, y = _blobs()
    res = decoders.decode_within(lambda run: x, y, FAST, np.random.default_rng(0), 8)
    assert len(res) == FAST.runs_within
    assert np.mean([r.accuracy for r in res]) > 0.95
    for r in res:
        np.testing.assert_allclose(np.nansum(r.confusion, axis=1), 1.0)
        assert r.c in FAST.c_grid


def test_decoder_is_at_chance_on_shuffled_labels():
    x, y = _blobs(n_per=60, seed=1)
    y = np.random.default_rng(5).permutation(y)
    protocol = decoders.Protocol(runs_within=12, runs_transfer=1, cv_splits=2, c_grid=(0.01,), per_run_c=False)
    res = decoders.decode_within(lambda run: x, y, protocol, np.random.default_rng(1), 8, c=0.01)
    acc = np.mean([r.accuracy for r in res])
    assert abs(acc - 1 / 8) < 0.06


def test_transfer_zscores_each_population_on_its_own():
    """A test population with another scale and offset decodes as well as the training one: each is
    standardised with its own statistics (condition ii/iii)."""
    x, y = _blobs(seed=2)
    shifted = x * 7.0 + 100.0
    res = decoders.decode_transfer(lambda run: x, lambda run: shifted, y, FAST, np.random.default_rng(0), 8)
    assert min(r.accuracy for r in res) > 0.95
    # without per-population z-scoring the shifted population would be decoded at chance
    clf, stats = decoders.fit_svm(x, y, 1.0)
    assert (clf.predict(decoders.zscore(shifted, stats)) == y).mean() < 0.5


def test_choose_c_prefers_the_grid_value_that_generalises():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(2), 60)
    x = np.c_[y + rng.normal(scale=1.0, size=len(y)), rng.normal(size=(len(y), 150))]  # one signal, 150 noise
    protocol = decoders.Protocol(runs_within=1, runs_transfer=1, cv_splits=10, c_grid=(1e-2, 100.0), per_run_c=True)
    assert decoders.choose_c(x, y, protocol, rng) == 1e-2


def test_random_population_draws_from_each_sites_layer():
    site_layers = np.array([3, 3, 5, 7])
    pool_layers = np.array([3, 3, 3, 5, 5, 9])
    picks = decoders.random_population(site_layers, pool_layers, np.random.default_rng(0))
    assert set(pool_layers[picks[:2]]) == {3} and picks[0] != picks[1]
    assert pool_layers[picks[2]] == 5
    assert 0 <= picks[3] < len(pool_layers)  # no pooled unit in layer 7: falls back to the whole pool


def test_heldout_variant_decodes_folds_5_to_9_from_the_units_chosen_on_folds_0_to_4(results_env, monkeypatch):
    """The held-out population is each site's unit chosen on folds 0-4 (split_matches), and its decoders see
    only folds 5-9: the matrices they get are exactly those units' activations on those stimuli."""
    from precompute.analyses.context import AnalysisContext
    from precompute.analyses.registry import get_analyses
    from precompute.jobs.analyze import run_analysis

    seen = []
    real = dec.decode_within

    def spy(x_of_run, y, *args, **kw):
        seen.append((np.asarray(x_of_run(0)), np.asarray(y)))
        return real(x_of_run, y, *args, **kw)

    monkeypatch.setattr(dec, "decode_within", spy)
    (analysis,) = get_analyses(["decoding"])
    assert run_analysis(results_env, analysis, "mini", "toy")
    with results_env.connect() as con:
        ctx = AnalysisContext(con=con, store=results_env, dataset="mini", model="toy")
        held = ctx.folds() >= 5
        sites = ctx.sites()
        values = ctx.unit_values(ctx.split_units(5))
    for region in ("V4", "IT"):
        idx = sites.index[sites["region"] == region].to_numpy()
        expected = values[idx][:, held].T
        assert any(x.shape == expected.shape and np.allclose(x, expected) for x, _ in seen), region
    assert all(len(y) in (held.sum(), len(held)) for _, y in seen)


def test_decoding_analysis_writes_runs_and_confusions(results_env):
    from precompute.analyses.registry import get_analyses
    from precompute.jobs.analyze import run_analysis

    assert dec.run_decoding is not None  # registered on import
    (analysis,) = get_analyses(["decoding"])
    assert run_analysis(results_env, analysis, "mini", "toy")
    with results_env.connect() as con:
        runs = con.execute("SELECT * FROM decoding WHERE model = 'toy'").df()
        conf = con.execute("SELECT * FROM confusions WHERE model = 'toy'").df()
    assert set(runs["region"]) == {"V4", "IT"}
    assert runs["chance"].eq(0.25).all() and runs["accuracy"].between(0, 1).all()
    ins = runs[
        (runs["variant"] == "in_sample")
        & (runs["train_population"] == "matched")
        & (runs["test_population"] == "matched")
    ]
    assert len(ins) == 2 * decoders.DEFAULT.runs_within
    assert set(runs["variant"]) == {"in_sample", "heldout"}
    sums = conf.groupby(["region", "train_population", "test_population", "variant", "true_category"])["fraction"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-9)


def test_neural_only_decoding_is_the_same_for_every_model(results_env):
    from precompute.analyses.registry import get_analyses
    from precompute.jobs.analyze import run_analysis

    (analysis,) = get_analyses(["decoding"])
    for model in ("toy", "toy2"):
        assert run_analysis(results_env, analysis, "mini", model)
    with results_env.connect() as con:
        df = con.execute(
            "SELECT model, region, variant, run, accuracy FROM decoding WHERE "
            "train_population = 'neural' AND test_population = 'neural' "
            "ORDER BY region, variant, run"
        ).df()
    a, b = df[df["model"] == "toy"], df[df["model"] == "toy2"]
    np.testing.assert_array_equal(a["accuracy"].to_numpy(), b["accuracy"].to_numpy())


def test_fit_cache_returns_the_fit_of_the_same_data_and_refits_other_data(monkeypatch):
    x, y = _blobs(seed=4)
    calls = []
    real = decoders._fit_svm
    monkeypatch.setattr(decoders, "_fit_svm", lambda *a: calls.append(1) or real(*a))
    decoders._FIT_CACHE.clear()
    clf, stats = decoders.fit_svm(x, y, 0.1)
    again, _ = decoders.fit_svm(x.copy(), y.copy(), 0.1)  # equal content, other arrays: a cache hit
    assert again is clf and len(calls) == 1
    fresh, _ = real(x, y, 0.1)  # what a refit gives: the same decoder (the primal solver is deterministic)
    np.testing.assert_array_equal(fresh.coef_, clf.coef_)
    other, _ = decoders.fit_svm(x, y, 1.0)
    shifted, _ = decoders.fit_svm(x + 1e-9, y, 0.1)
    assert len(calls) == 3 and other is not clf and shifted is not clf


def test_decoding_analysis_is_unchanged_by_the_in_process_caches(results_env):
    """A second model's run reuses the neural decoders from the cache: its rows equal a run with cold caches."""
    from precompute.analyses.registry import get_analyses
    from precompute.jobs.analyze import run_analysis

    (analysis,) = get_analyses(["decoding"])
    decoders._FIT_CACHE.clear()
    decoders._SHARED_CACHE.clear()
    assert run_analysis(results_env, analysis, "mini", "toy")
    assert decoders._SHARED_CACHE  # the neural decoders were remembered
    assert run_analysis(results_env, analysis, "mini", "toy2")
    query = (
        "SELECT region, train_population, test_population, variant, run, accuracy, c FROM decoding "
        "WHERE model = 'toy2' ORDER BY ALL"
    )
    with results_env.connect() as con:
        warm = con.execute(query).df()
    decoders._FIT_CACHE.clear()
    decoders._SHARED_CACHE.clear()
    assert run_analysis(results_env, analysis, "mini", "toy2", force=True)
    with results_env.connect() as con:
        cold = con.execute(query).df()
    pd.testing.assert_frame_equal(warm, cold)
