"""The synthetic HvM dataset behaves like the real data: metadata round-trip, reliability, category
information in IT over V4, receptive fields, topography, determinism.

Most properties are checked on the 640-stimulus quick subset (one module-scoped generation); the
decoding comparison and the metadata round-trip use the full 2,560 stimuli (one more generation).
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from precompute.core.errors import UserError
from precompute.datasets import encoding, image_features, render, synth
from precompute.datasets.reliability import split_half_reliability
from precompute.datasets.rf_mapping import grid_centres_deg, square_grid_stimuli


@pytest.fixture(scope="module")
def quick():
    return synth.generate(seed=0, n_stimuli=640)


@pytest.fixture(scope="module")
def full():
    return synth.generate(seed=0)


@pytest.fixture(scope="module")
def csv_v6() -> pd.DataFrame:
    meta = pd.read_csv(synth.HVM_CSV, dtype={"image_id": str, "background_id": str})
    return meta[meta["variation"] == 6].reset_index(drop=True)


def _region(tables, region: str) -> np.ndarray:
    return (tables.sites["region"] == region).to_numpy()


# --------------------------------------------------------------------------- metadata and shapes
def test_full_stimuli_round_trip_the_csv(full, csv_v6):
    st = full.stimuli
    assert len(st) == 2560
    assert st["stimulus_id"].tolist() == csv_v6["image_id"].tolist()
    assert st["idx"].tolist() == list(range(2560))
    assert st["category"].tolist() == csv_v6["category_name"].tolist()
    assert st["object"].tolist() == csv_v6["object_name"].tolist()
    assert st["filename"].tolist() == csv_v6["image_file_name"].tolist()
    assert st["background_id"].tolist() == csv_v6["background_id"].tolist()
    for col in ("ty", "tz", "s", "rxy", "rxz", "ryz"):
        np.testing.assert_array_equal(st[col].to_numpy(), csv_v6[col].to_numpy())
    assert (st["variation"] == 6).all() and (st["width"] == 256).all() and (st["height"] == 256).all()
    extra = json.loads(st["extra"].iloc[5])
    assert set(extra) == {"rxy_semantic", "rxz_semantic", "ryz_semantic", "size"}
    assert extra["rxy_semantic"] == pytest.approx(csv_v6["rxy_semantic"].iloc[5])
    assert st.groupby("category")["object"].nunique().eq(8).all() and st["category"].nunique() == 8


def test_quick_subset_is_balanced_and_real(quick, csv_v6):
    st = quick.stimuli
    assert len(st) == 640 and st["stimulus_id"].isin(csv_v6["image_id"]).all()
    assert st.groupby("object").size().eq(10).all()
    assert st.groupby("category").size().eq(80).all()
    # CSV order is kept: positions in the CSV increase with idx
    pos = pd.Index(csv_v6["image_id"]).get_indexer(st["stimulus_id"])
    assert np.all(np.diff(pos) > 0)


@pytest.mark.parametrize("n", [1, 8, 100, 639])
def test_any_subset_size_is_as_balanced_as_possible(csv_v6, n):
    sub = synth.select_balanced(synth.load_hvm_metadata(), n)
    assert len(sub) == n and sub["image_id"].is_unique
    per_obj = sub.groupby("object_name").size().reindex(csv_v6["object_name"].unique(), fill_value=0)
    per_cat = sub.groupby("category_name").size().reindex(csv_v6["category_name"].unique(), fill_value=0)
    assert per_obj.max() - per_obj.min() <= 1
    assert per_cat.max() - per_cat.min() <= 1


def test_bad_subset_size_is_a_user_error():
    with pytest.raises(UserError, match="between 1 and 2560"):
        synth.generate(n_stimuli=5000)


def test_arrays_sites_and_images_have_the_contract_shapes(quick):
    n = len(quick.stimuli)
    assert quick.responses.shape == (256, n) and quick.responses.dtype == np.float32
    assert quick.trials.shape == (256, n, 47) and quick.trials.dtype == np.float32
    np.testing.assert_allclose(quick.responses, quick.trials.mean(axis=2), rtol=1e-6)
    assert np.all(quick.trials == np.round(quick.trials)) and quick.trials.min() >= 0  # spike counts
    sites = quick.sites
    assert sites["region"].value_counts().to_dict() == {"IT": 168, "V4": 88}
    assert sites["site_id"].is_unique and sites["idx"].tolist() == list(range(256))
    assert all(re.fullmatch(r"Synth_L_P_\d_\d", s) for s in sites.loc[_region(quick, "V4"), "site_id"])
    assert all(re.fullmatch(r"Synth_L_[MA]_\d_\d", s) for s in sites.loc[_region(quick, "IT"), "site_id"])
    assert set(sites.loc[_region(quick, "IT"), "subregion"]) == {"pIT", "cIT", "aIT"}
    assert sites.loc[_region(quick, "V4"), "subregion"].isna().all()
    assert (sites["animal"] == "Synth").all()
    assert len(quick.images) == n
    for png in quick.images[:5]:
        img = Image.open(io.BytesIO(png))
        assert img.mode == "L" and img.size == (256, 256)
        assert np.asarray(img).std() > 5  # not blank
    info = quick.info
    assert info["synthetic"] is True and info["source"] == "synth" and info["seed"] == 0
    assert info["visual_degrees"] == 8.0 and info["n_repetitions"] == 47
    assert info["title"] == "Synthetic HvM (variation 6)" and "SYNTHETIC" in info["description"]


def test_rates_are_in_a_physiological_range(quick):
    rate = quick.responses / encoding.WINDOW_S  # spikes/s
    per_site = rate.mean(axis=1)
    assert 2 < np.median(per_site) < 30
    assert np.percentile(rate, 99.9) < 80


def test_rf_map_rows(quick):
    maps = quick.rf_maps
    assert maps["site_id"].tolist() == quick.sites["site_id"].tolist()
    assert all(len(g) == 64 for g in maps["grid_responses"])
    assert all(len(m) == s * s for m, s in zip(maps["map"], maps["map_size"], strict=True))
    assert (maps["extent_deg"] == 8.0).all()


# --------------------------------------------------------------------------- behaves like the real data
def test_reliability_is_realistic_and_is_the_shared_statistic(quick):
    rel = quick.sites["reliability"].to_numpy()
    for region in ("V4", "IT"):
        med = np.median(rel[_region(quick, region)])
        assert 0.7 <= med <= 0.95, (region, med)
    np.testing.assert_allclose(rel, split_half_reliability(quick.trials, n_splits=10, seed=0))


def _decode(tables, region: str) -> float:
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = tables.responses[_region(tables, region)].T
    y = tables.stimuli["category"].to_numpy()
    # a linear classifier; ridge (closed form) decodes as well as logistic regression here, 40x faster
    clf = make_pipeline(StandardScaler(), RidgeClassifier(alpha=10.0))
    return float(cross_val_score(clf, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean())


def test_it_decodes_category_clearly_better_than_v4(full):
    v4, it = _decode(full, "V4"), _decode(full, "IT")
    assert v4 > 0.125 + 0.03, v4
    assert it > v4 + 0.3, (it, v4)


def test_v4_fields_are_smaller_than_it_fields_true_and_mapped(quick):
    s = quick.sites
    v4, it = _region(quick, "V4"), _region(quick, "IT")
    assert s.loc[v4, "true_rf_size_deg"].between(0.5, 3.0).all()
    assert s.loc[it, "true_rf_size_deg"].min() >= 3.0
    assert s.loc[v4, "true_rf_size_deg"].median() < s.loc[it, "true_rf_size_deg"].median()
    assert s.loc[v4, "rf_size_deg"].median() < s.loc[it, "rf_size_deg"].median()
    assert np.hypot(s["true_rf_x_deg"], s["true_rf_y_deg"]).max() <= 4.0 * np.sqrt(2)


def test_mapped_v4_fields_are_where_the_true_fields_are(quick):
    s = quick.sites[_region(quick, "V4")]
    err = np.hypot(s["rf_x_deg"] - s["true_rf_x_deg"], s["rf_y_deg"] - s["true_rf_y_deg"])
    assert np.nanmedian(err) < 0.5
    assert np.corrcoef(s["rf_y_deg"], s["true_rf_y_deg"])[0, 1] > 0.8  # +y up in both


def test_nearby_v4_sites_are_more_correlated_than_distant_ones(quick):
    v4 = _region(quick, "V4")
    r = np.corrcoef(quick.responses[v4])
    extra = quick.sites.loc[v4, "extra"].map(json.loads)
    rows = np.array([e["row"] for e in extra])
    cols = np.array([e["col"] for e in extra])
    dist = np.hypot(rows[:, None] - rows[None, :], cols[:, None] - cols[None, :])
    near = r[(dist > 0) & (dist <= 1.5)].mean()
    far = r[dist >= 6].mean()
    assert near > far + 0.15, (near, far)


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_other_seed_different():
    a = synth.generate(seed=3, n_stimuli=64)
    b = synth.generate(seed=3, n_stimuli=64)
    c = synth.generate(seed=4, n_stimuli=64)
    assert a.images == b.images
    np.testing.assert_array_equal(a.trials, b.trials)
    np.testing.assert_array_equal(a.responses, b.responses)
    pd.testing.assert_frame_equal(a.sites, b.sites)
    pd.testing.assert_frame_equal(a.stimuli, b.stimuli)
    pd.testing.assert_frame_equal(a.rf_maps, b.rf_maps)
    assert a.info == b.info
    assert a.stimuli["stimulus_id"].tolist() == c.stimuli["stimulus_id"].tolist()  # same stimuli...
    assert all(x != y for x, y in zip(a.images, c.images, strict=True))  # ...drawn differently
    assert not np.array_equal(a.responses, c.responses)
    assert not np.allclose(a.sites["true_rf_x_deg"], c.sites["true_rf_x_deg"])


# --------------------------------------------------------------------------- rendering
def test_object_is_placed_by_the_documented_mapping():
    sprite = render.object_sprite(0, "Fruits", "apple")
    for ty, tz in ((0.0, 0.0), (0.5, 0.0), (0.0, 1.0), (-0.6, -1.2)):
        _, alpha = render.place_object(sprite, ty, tz, 1.0, 0.0, 0.0, 0.0)
        rows, cols = np.nonzero(alpha > 0.5)
        # centroid of the apple's silhouette relative to its canonical centroid
        _, a0 = render.place_object(sprite, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
        r0, c0 = np.nonzero(a0 > 0.5)
        assert cols.mean() - c0.mean() == pytest.approx(ty * render.PX_PER_HVM_UNIT, abs=1.0)
        assert rows.mean() - r0.mean() == pytest.approx(-tz * render.PX_PER_HVM_UNIT, abs=1.0)  # +tz is up


def test_scale_and_depth_rotation_change_the_silhouette_as_documented():
    sprite = render.object_sprite(0, "Cars", "car_clio")
    area = lambda a: float((a > 0.5).sum())  # noqa: E731
    base = area(render.place_object(sprite, 0, 0, 1.0, 0, 0, 0)[1])
    assert area(render.place_object(sprite, 0, 0, 1.5, 0, 0, 0)[1]) == pytest.approx(2.25 * base, rel=0.05)
    assert area(render.place_object(sprite, 0, 0, 1.0, 0, 60, 0)[1]) == pytest.approx(0.5 * base, rel=0.05)
    assert area(render.place_object(sprite, 0, 0, 1.0, 0, 0, 60)[1]) == pytest.approx(0.5 * base, rel=0.05)
    assert area(render.place_object(sprite, 0, 0, 1.0, 37, 0, 0)[1]) == pytest.approx(base, rel=0.05)
    _, wide = render.place_object(sprite, 0, 0, 1.0, 0, 0, 0)
    _, turned = render.place_object(sprite, 0, 0, 1.0, 90, 0, 0)
    w_cols = np.nonzero(wide.max(axis=0) > 0.5)[0]
    t_cols = np.nonzero(turned.max(axis=0) > 0.5)[0]
    assert np.ptp(w_cols) > 1.5 * np.ptp(t_cols)  # a side-view car is wide; rotated 90 degrees it is tall


def test_categories_look_different():
    """Every object has a distinct silhouette; objects of a category resemble each other more than others."""
    meta = synth.load_hvm_metadata()
    objs = meta[["category_name", "object_name"]].drop_duplicates().sort_values(["category_name", "object_name"])
    sil = np.array([render.object_sprite(0, c, o).alpha[::4, ::4].ravel() for c, o in objs.itertuples(index=False)])
    assert len({s.tobytes() for s in (sil > 0.5)}) == 64
    r = np.corrcoef(sil)
    cat = objs["category_name"].to_numpy()
    same = r[(cat[:, None] == cat[None, :]) & ~np.eye(64, dtype=bool)].mean()
    other = r[cat[:, None] != cat[None, :]].mean()
    assert same > other + 0.1, (same, other)


def test_backgrounds_are_deterministic_natural_textures():
    a = render.background(0, "abc")
    assert np.array_equal(a, render.background(0, "abc"))
    assert not np.array_equal(a, render.background(0, "abd"))
    assert not np.array_equal(a, render.background(1, "abc"))
    assert a.dtype == np.float32 and a.shape == (256, 256) and a.min() >= 0.0 and a.max() <= 1.0
    # 1/f-like: most power at low spatial frequencies
    p = np.abs(np.fft.rfft2(a - a.mean())) ** 2
    f = np.hypot(np.fft.fftfreq(256)[:, None], np.fft.rfftfreq(256)[None, :])
    assert p[(f > 0) & (f < 0.05)].mean() > 100 * p[f > 0.25].mean()


def test_pooling_weights_put_plus_y_up():
    w = image_features.gaussian_weights(np.array([2.0]), np.array([3.0]), np.array([0.3]), 64)[0].reshape(64, 64)
    r, c = np.unravel_index(np.argmax(w), w.shape)
    assert r < 16 and c > 40  # up and to the right
    assert w.sum() == pytest.approx(1.0, rel=1e-5)


def test_demo_step_is_named_after_the_demo_dataset():
    from precompute.jobs.demo import dataset_steps, demo_dataset

    for variant in ("quick", "default", "full"):
        steps = dataset_steps(variant)
        assert [s.name for s in steps] == [f"dataset:{demo_dataset(variant)}"]
    assert "640" in dataset_steps("quick")[0].description


def test_tables_go_through_the_writer(tmp_path):
    """A small dataset written by the shared writer lands in every dataset table, FLOAT[] maps included."""
    import duckdb

    writer = pytest.importorskip("precompute.datasets.writer")
    from precompute.core.store import Store

    tables = synth.generate(seed=0, n_stimuli=16)
    store = Store(tmp_path / "unitscope.duckdb")
    writer.write_dataset(store, "synthetic-hvm-test", tables)
    con = duckdb.connect(str(store.served_path), read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        assert q("SELECT n_stimuli, n_sites, synthetic, n_repetitions FROM datasets") == [(16, 256, True, 47)]
        assert q("SELECT count(*) FROM responses")[0][0] == 16 * 256
        assert q("SELECT count(*) FROM trials")[0][0] == 16 * 256 * 47
        assert q("SELECT count(*), min(len(grid_responses)), min(map_size) FROM site_rf_maps") == [(256, 64, 64)]
        assert q("SELECT count(*) FROM stimulus_images")[0][0] == 16
    finally:
        con.close()


# --------------------------------------------------------------------------- the hidden encoding model
def _grating(theta_deg: float, wavelength_px: float) -> np.ndarray:
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float64)
    th = np.deg2rad(theta_deg)
    # theta measured in image coordinates (x right, row down), as the filters are
    phase = 2 * np.pi * (xx * np.cos(th) + yy * np.sin(th)) / wavelength_px
    return (0.5 + 0.3 * np.cos(phase)).astype(np.float32)


@pytest.mark.parametrize("k", range(image_features.ORIENTATIONS))
def test_gabor_channels_prefer_their_orientation_and_scale(k):
    theta = 180.0 * k / image_features.ORIENTATIONS
    for j, lam in enumerate(image_features.WAVELENGTHS_PX):
        f = image_features.feature_maps(_grating(theta, lam * 2)[None])[0]  # filters' px are at 128: x2 at 256
        energy = f[: image_features.N_GABOR].mean(axis=(1, 2))
        assert int(np.argmax(energy)) == j * image_features.ORIENTATIONS + k


def test_blank_gives_no_features_and_a_square_drives_the_centre_surround_channels():
    squares, blank = square_grid_stimuli(256)
    fb = image_features.feature_maps(blank[None])[0]
    assert np.abs(fb).max() < 1e-5
    fs = image_features.feature_maps(squares[27][None])[0]  # row 3, column 3: centre (-0.5, +0.5) degrees
    on_small = image_features.N_GABOR + image_features.N_CURV
    r, c = np.unravel_index(np.argmax(fs[on_small + 1]), (64, 64))  # large ON centre peaks inside the square
    assert 24 <= r < 32 and 24 <= c < 32


def test_sites_respond_more_to_stimuli_in_their_field():
    """Rates of V4 sites to a square on their field's centre exceed those to a square far away."""
    rng = render.rng_for(0, "sites")
    pop = encoding.make_population(rng)
    model = encoding.GroundTruthModel(pop)
    meta = synth.select_balanced(synth.load_hvm_metadata(), 64)
    st = synth.stimulus_table(meta)
    images, masks, _ = synth.render_stimuli(0, st)
    model.fit(images, masks, synth.object_index(st)[0])
    squares, _ = square_grid_stimuli(256)
    rates = model.rates(np.round(squares * 255).astype(np.uint8))  # (sites, 64)
    xs, ys = grid_centres_deg()
    cx, cy = np.meshgrid(xs, ys)
    v4 = np.nonzero(pop.is_v4)[0]
    wins = 0
    for i in v4:
        d = np.hypot(cx.ravel() - pop.rf_x[i], cy.ravel() - pop.rf_y[i])
        wins += rates[i, np.argmin(d)] > rates[i, np.argmax(d)]
    assert wins >= 0.9 * len(v4)


def test_the_demos_dataset_names_only_take_the_demos_settings(tmp_path, monkeypatch):
    """`demo` takes a dataset named synthetic-hvm(-quick) as its step done: another size or seed under that
    name would become the demo's data, so it is refused before anything is generated or written."""
    from types import SimpleNamespace

    from precompute.cli import datasets as datasets_cli
    from precompute.cli.main import main

    db = tmp_path / "unitscope.duckdb"
    made, written = [], []

    def fake_generate(seed=0, n_stimuli=None, **kw):
        made.append((seed, n_stimuli))
        return SimpleNamespace(stimuli=[0] * (n_stimuli or synth.N_HVM_STIMULI), sites=[0] * 4)

    monkeypatch.setattr(synth, "generate", fake_generate)
    monkeypatch.setattr(datasets_cli, "write_dataset", lambda store, name, tables, **kw: written.append(name))
    for argv in (["--stimuli", "64"], ["--seed", "1"], ["--name", "synthetic-hvm-quick", "--stimuli", "100"]):
        assert main(["--db", str(db), "datasets", "synth", *argv]) != 0
    assert made == [] and written == []
    for argv, want in (
        (["--stimuli", "2560"], (0, None, "synthetic-hvm")),
        ([], (0, None, "synthetic-hvm")),
        (["--name", "synthetic-hvm-quick"], (0, synth.QUICK_STIMULI, "synthetic-hvm-quick")),
        (["--name", "mine", "--stimuli", "64", "--seed", "3"], (3, 64, "mine")),
    ):
        made.clear()
        written.clear()
        assert main(["--db", str(db), "datasets", "synth", *argv]) == 0
        assert [(*made[0], written[0])] == [want], argv
