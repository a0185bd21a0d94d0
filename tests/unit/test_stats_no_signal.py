"""Every held-out score on data with no signal: its 95% interval contains the null value (docs/metrics.md).

Two ways to have no signal, each over several seeds, through the whole product (the real writer, the matching
engine with its training-set checkpoints, the gather pass, the analyses):

- units that ignore the images (the `random` control's RandomSource) against sites that do respond to them
  (correlated sites with category tuning, like real ones): every held-out r is 0 in truth;
- sites whose responses ignore the images (Poisson noise around a per-site rate) against a model whose units
  do depend on them.

Checked: heldout_split_half, heldout_n2n, heldout_ceiled, brainscore_ceiled (and the stimuli-only
intervals), every point of the selection curve, the held-out decoding variant (accuracy at chance) and the
paired comparison of two such models (difference 0). The same data also show that the test can fail: a
selection that saw the held-out stimuli (the site's best unit on ALL stimuli, scored on folds 5-9 with the
same interval) is biased upwards and its interval excludes 0. A planted-signal dataset recovers its planted
units and scores on every training set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from precompute.analyses.context import AnalysisContext
from precompute.core.store import Store
from precompute.datasets.tables import DatasetTables
from precompute.datasets.writer import write_dataset
from precompute.jobs.analyze import run_analyses
from precompute.match import runner
from precompute.match.engine import EngineConfig
from precompute.models.base import LayerInfo
from precompute.models.controls import RandomSource
from precompute.statistics import intervals
from precompute.statistics.crossval import masked_pearson_rows
from tests.support.factories import png_bytes
from tests.support.sources import SyntheticSource

N_CATEGORIES, OBJECTS_PER_CATEGORY, VIEWS = 6, 4, 10  # 240 stimuli in 24 objects
N_V4, N_IT, N_REPS = 12, 24, 8
SHAPES = [(8, 6, 6), (16, 3, 3), (64,)]  # 496 units
SEEDS = (0, 1, 2, 3)
HELDOUT = (
    "heldout_split_half",
    "heldout_split_half_stimuli",
    "heldout_n2n",
    "heldout_n2n_stimuli",
    "heldout_ceiled",
    "brainscore_ceiled",
)
ENGINE = EngineConfig(
    device="cpu", batch_size=16, max_stage=64, min_stage=16, memory_bytes=1 << 30, reserve_bytes=64 << 20, threads=1
)


def _tables(seed: int, rates: np.ndarray, images: list[np.ndarray]) -> DatasetTables:
    rng = np.random.default_rng([seed, 1])
    n = len(images)
    objects = [i // VIEWS for i in range(n)]
    stimuli = pd.DataFrame(
        {
            "stimulus_id": [f"s{seed}-{i:03d}" for i in range(n)],
            "idx": np.arange(n),
            "object": [f"obj{o}" for o in objects],
            "category": [f"cat{o // OBJECTS_PER_CATEGORY}" for o in objects],
        }
    )
    n_sites = N_V4 + N_IT
    sites = pd.DataFrame(
        {
            "site_id": [f"{'V4' if j < N_V4 else 'IT'}-{j:02d}" for j in range(n_sites)],
            "idx": np.arange(n_sites),
            "region": ["V4" if j < N_V4 else "IT" for j in range(n_sites)],
            "animal": "Sim",
            "electrode_array": ["P" if j < N_V4 else "MA"[j % 2] for j in range(n_sites)],
        }
    )
    trials = rng.poisson(rates[:, :, None], size=(*rates.shape, N_REPS)).astype(np.float32)
    from precompute.datasets.reliability import split_half_reliability

    sites["reliability"] = split_half_reliability(trials)
    info = {"title": "no-signal test set", "source": "synth", "synthetic": True, "seed": seed}
    return DatasetTables(
        info=info,
        stimuli=stimuli,
        images=[png_bytes(im) for im in images],
        sites=sites,
        responses=trials.mean(axis=2),
        trials=trials,
    )


def _images(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng([seed, 2])
    n = N_CATEGORIES * OBJECTS_PER_CATEGORY * VIEWS
    # each object has its own texture; views are noisy, shifted copies (so objects cluster, like HvM's views)
    base = rng.integers(0, 256, size=(N_CATEGORIES * OBJECTS_PER_CATEGORY, 24, 24))
    return [
        np.clip(np.roll(base[i // VIEWS], rng.integers(-3, 4), axis=1) + rng.normal(0, 40, (24, 24)), 0, 255).astype(
            np.uint8
        )
        for i in range(n)
    ]


def _tuned_rates(seed: int, images: list[np.ndarray]) -> np.ndarray:
    """Sites that respond to the images: mixtures of image features and category tuning, correlated across
    sites (neighbours share tuning), 2-20 spikes per presentation."""
    rng = np.random.default_rng([seed, 3])
    feats = np.concatenate(
        [
            o.reshape(len(images), -1)
            for o in SyntheticSource([(12,)], seed=seed + 50).activations(images, [""] * len(images))
        ],
        axis=1,
    )
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
    category = np.eye(N_CATEGORIES)[[i // (VIEWS * OBJECTS_PER_CATEGORY) for i in range(len(images))]]
    shared = rng.normal(size=(3, feats.shape[1]))
    weights = rng.normal(size=(N_V4 + N_IT, 3)) @ shared + 0.5 * rng.normal(size=(N_V4 + N_IT, feats.shape[1]))
    drive = weights @ feats.T / np.sqrt(feats.shape[1]) + rng.normal(size=(N_V4 + N_IT, N_CATEGORIES)) @ category.T
    return 2.0 + 18.0 / (1.0 + np.exp(-drive))


def _add_model(store: Store, model: str, source) -> None:
    with store.step(f"model:{model}") as con:
        con.execute(
            "INSERT INTO models (model, family, source, kind, n_layers, layout) VALUES (?, 'test', 'test', "
            "'control', ?, 'nchw')",
            [model, len(source.layers)],
        )
        for la in source.layers:
            con.execute(
                "INSERT INTO layers (model, layer_idx, layer, depth, channels, height, width, units) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [model, la.layer_idx, la.layer, la.layer_idx / 2, la.channels, la.height, la.width, la.units],
            )


def _world(tmp_path, seed: int, scenario: str, models: dict) -> Store:
    """A store with one dataset and the given models (name -> source) matched and analysed on it."""
    store = Store(tmp_path / f"{scenario}-{seed}" / "unitscope.duckdb")
    images = _images(seed)
    if scenario == "units_null":
        rates = _tuned_rates(seed, images)
    elif scenario == "responses_null":
        rates = np.repeat(np.random.default_rng([seed, 4]).uniform(2, 20, size=(N_V4 + N_IT, 1)), len(images), axis=1)
    else:
        raise ValueError(scenario)
    write_dataset(store, "d", _tables(seed, rates, images))
    for name, source in models.items():
        _add_model(store, name, source)
        runner.run_pair(
            store, "d", name, top_k=5, progress=False, config=ENGINE, source_factory=lambda *_a, s=source: s
        )
    run_analyses(
        store, "d", list(models), ["noise_ceiling", "heldout_split_half", "crossval", "decoding", "model_comparison"]
    )
    return store


def _random_model(seed: int) -> RandomSource:
    layers = [LayerInfo(i, f"layer{i}", *((*s, 1, 1))[:3]) for i, s in enumerate(SHAPES)]
    return RandomSource(f"random{seed}", layers, seed=seed, threads=1)


def _read(store: Store, sql: str, params=()) -> pd.DataFrame:
    with store.connect() as con:
        return con.execute(sql, list(params)).df()


@pytest.fixture(scope="module")
def null_worlds(tmp_path_factory):
    root = tmp_path_factory.mktemp("no-signal")
    worlds = []
    for seed in SEEDS:
        worlds.append(
            (
                "units_null",
                seed,
                _world(
                    root, seed, "units_null", {"rand-a": _random_model(10 + seed), "rand-b": _random_model(20 + seed)}
                ),
            )
        )
        worlds.append(
            (
                "responses_null",
                seed,
                _world(root, seed, "responses_null", {"net": SyntheticSource(SHAPES, seed=seed, model="net")}),
            )
        )
    return worlds


def test_every_held_out_interval_contains_zero(null_worlds):
    misses, total, values = [], 0, []
    for scenario, seed, store in null_worlds:
        rows = _read(
            store,
            "SELECT model, region, metric, value, ci_low, ci_high FROM scores WHERE metric IN "
            f"({', '.join('?' for _ in HELDOUT)})",
            HELDOUT,
        )
        assert set(rows.metric) == set(HELDOUT)
        curve = _read(store, "SELECT model, region, fraction AS metric, value, ci_low, ci_high FROM selection_curve")
        assert curve.metric.nunique() == 9
        both = pd.concat([rows, curve.astype({"metric": str})])
        if scenario == "units_null":
            assert both.value.notna().all()
        else:  # sites without signal have reliability ~0: a ceiled score may be undefined (NaN), never made up
            both = both[both.value.notna() | ~both.metric.str.contains("ceiled")]
            assert both.value.notna().all()
        for r in both.itertuples():
            total += 1
            values.append(r.value)
            if not r.ci_low <= 0.0 <= r.ci_high:
                misses.append((scenario, seed, r.model, r.region, r.metric, round(r.value, 3)))
    # 95% intervals: a handful may miss by chance; the two-way bootstrap is conservative, so few do
    print(f"{len(misses)} of {total} intervals miss 0: {misses}")
    assert len(misses) <= 0.05 * total, misses
    assert abs(np.mean(values)) < 0.02  # and the point estimates scatter around 0


def test_a_selection_that_saw_the_held_out_stimuli_is_caught(null_worlds):
    """The same interval around the leaky estimate (best unit on ALL stimuli, scored on folds 5-9) excludes 0:
    the test above would fail for the scores this project used to store."""
    excluded = 0
    checked = 0
    for scenario, _seed, store in null_worlds:
        if scenario != "units_null":
            continue
        with store.connect() as con:
            ctx = AnalysisContext(con=con, store=store, dataset="d", model="rand-a")
            best = ctx.best_matches()
            units = [(int(r.layer_idx), int(r.channel), int(r.y), int(r.x)) for r in best.itertuples()]
            values = ctx.unit_values(units)
            train = ctx.folds() < 5
            leaky = masked_pearson_rows(ctx.responses(), values, ~train)
            rows = intervals.score_rows(
                ctx,
                "leaky",
                leaky,
                intervals.heldout_r_under(ctx.responses(), values[None], train[None]),
                np.random.default_rng(0),
            )
        for _region, _m, value, lo, _hi, _scheme in rows:
            checked += 1
            excluded += lo > 0
            assert value > 0.05
    assert excluded == checked


def test_held_out_decoding_is_at_chance_and_in_sample_decoding_is_not(null_worlds):
    """On the side without signal, the held-out variant decodes at chance (averaged over seeds, regions and
    conditions; one dataset's cross-validated accuracy scatters widely around chance with 120 stimuli). The
    in-sample variant's transfer from units chosen on all stimuli to the sites is far above chance with units
    that ignore the images: the leak the held-out variant removes."""
    chance = 1 / N_CATEGORIES
    held, leaky = [], []
    for scenario, _seed, store in null_worlds:
        rows = _read(
            store,
            "SELECT model, region, train_population, test_population, variant, "
            "avg(accuracy) AS accuracy FROM decoding GROUP BY ALL",
        )
        # the side without signal: the random units, or the neural responses that ignore the images (the
        # network's own units do carry the images' categories: matched -> matched is above chance there)
        side = "matched" if scenario == "units_null" else "neural"
        these = rows[((rows.train_population == side) | (rows.test_population == side)) & (rows.variant == "heldout")]
        assert len(these) == 6 * these.model.nunique()  # 3 conditions x 2 regions per model
        held += these["accuracy"].tolist()
        if scenario == "units_null":
            leaky += rows[
                (rows.variant == "in_sample")
                & (rows.train_population == "matched")
                & (rows.test_population == "neural")
            ]["accuracy"].tolist()
    assert abs(np.mean(held) - chance) < 0.03, held
    assert max(held) < chance + 0.25
    assert np.mean(leaky) > chance + 0.15, leaky


def test_two_models_without_signal_are_not_told_apart(null_worlds):
    contains, total = 0, 0
    for scenario, _seed, store in null_worlds:
        if scenario != "units_null":
            continue
        rows = _read(
            store,
            "SELECT region, metric, difference, ci_low, ci_high, p_value, p_holm, test FROM "
            "model_comparisons WHERE metric = 'heldout_split_half'",
        )
        assert len(rows) == 2 and (rows.test.str.contains("bootstrap")).all()
        for r in rows.itertuples():
            total += 1
            contains += r.ci_low <= 0 <= r.ci_high
            assert (r.p_value < 0.05) == (not r.ci_low <= 0 <= r.ci_high) or r.p_value == pytest.approx(0.05, abs=0.01)
    assert contains >= total - 1


def test_planted_units_are_recovered_on_every_training_set(tmp_path):
    """Sites that are noisy copies of known units choose those units on every nested training set, and their
    held-out scores are high with intervals far from 0."""
    seed = 7
    images = _images(seed)
    source = SyntheticSource(SHAPES, seed=seed, model="net")
    acts = np.concatenate([o.reshape(len(images), -1) for o in source.activations(images, [""] * len(images))], 1)
    rng = np.random.default_rng(0)
    live = np.flatnonzero(acts.std(axis=0) > 0.5 * np.median(acts.std(axis=0)))
    planted = rng.choice(live, N_V4 + N_IT, replace=False)
    a = acts[:, planted].T.astype(np.float64)
    rates = 3.0 + 12.0 * (a - a.min(axis=1, keepdims=True)) / np.ptp(a, axis=1, keepdims=True)
    store = Store(tmp_path / "unitscope.duckdb")
    write_dataset(store, "d", _tables(seed, rates, images))
    _add_model(store, "net", source)
    runner.run_pair(store, "d", "net", top_k=5, progress=False, config=ENGINE, source_factory=lambda *_a: source)
    run_analyses(store, "d", ["net"], ["heldout_split_half", "crossval"])
    chosen = _read(
        store,
        "SELECT s.idx, m.train_folds, m.layer_idx, m.channel, m.y, m.x FROM split_matches m "
        "JOIN sites s USING (dataset, site_id) WHERE m.rank = 1",
    )
    flat = np.array(
        [
            source.offsets[r.layer_idx]
            + r.channel * source.layers[r.layer_idx].height * source.layers[r.layer_idx].width
            + r.y * source.layers[r.layer_idx].width
            + r.x
            for r in chosen.itertuples()
        ]
    )
    hit = flat == planted[chosen["idx"].to_numpy()]
    assert hit.mean() > 0.95 and chosen.train_folds.nunique() == 9
    assert hit[chosen.train_folds.to_numpy() >= 3].all()  # from 30% of the stimuli on, every site finds its unit
    scores = _read(
        store, "SELECT metric, value, ci_low FROM scores WHERE metric IN ('heldout_split_half', 'heldout_n2n')"
    )
    assert (scores.value > 0.7).all() and (scores.ci_low > 0.5).all()
