"""The HvM HDF5 release importer, on files written in the release's layout."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from precompute.core.errors import UserError
from precompute.datasets.importers.hvm_hdf5 import import_hvm_hdf5
from precompute.datasets.importers.selection import build_selection
from precompute.datasets.reliability import split_half_reliability
from tests.unit.test_import_support import HVM_CSV, hvm_rows, write_hvm_hdf5


@pytest.fixture
def release(tmp_path):
    rng = np.random.default_rng(5)
    rows = hvm_rows({0: 4, 3: 10, 6: 11})
    path = tmp_path / "ventral_neural_data.hdf5"
    out = write_hvm_hdf5(path, rows, n_v4=5, n_it=7, reps={0: 2, 3: 5, 6: 4}, rng=rng)
    return path, out


def _reference_trials(out, rows_idx, cols):
    max_rep = max(d.shape[0] for _, d in out["per_level"].values())
    ref = np.full((len(cols), len(rows_idx), max_rep), np.nan)
    for idx, data in out["per_level"].values():
        for j, r in enumerate(rows_idx):
            if r in idx:
                k = int(np.flatnonzero(idx == r)[0])
                ref[:, j, : data.shape[0]] = data[:, k, cols].T
    return ref


def test_averages_trials_sites_and_images(release):
    path, out = release
    t = import_hvm_hdf5(path, stimulus_csv=None)
    cols = np.r_[out["v4_cols"], out["it_cols"]]
    order = np.argsort(cols)  # sites come in file column order
    cols = cols[order]
    ref = _reference_trials(out, np.arange(len(out["rows"])), cols)
    np.testing.assert_allclose(t.trials, ref, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(t.responses, np.nanmean(ref, axis=2), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(t.responses, out["trial_averaged"][:, cols].T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t.sites["reliability"], split_half_reliability(ref), atol=1e-6)
    # readable ids: region and index in neural_meta/<REGION>_NEURONS
    by_col = dict(zip(cols, t.sites["site_id"], strict=True))
    assert by_col[out["v4_cols"][2]] == "V4-002" and by_col[out["it_cols"][0]] == "IT-000"
    assert t.sites["region"].value_counts().to_dict() == {"IT": 7, "V4": 5}
    assert set(t.sites.loc[t.sites["region"] == "IT", "subregion"]) == {"pIT", "cIT", "aIT"}
    # images: float [0, 1] -> 8-bit grayscale PNG
    img = Image.open(io.BytesIO(t.images[3]))
    assert img.mode == "L" and img.size == (16, 16)
    np.testing.assert_array_equal(np.asarray(img), np.rint(out["images"][3] * 255).astype(np.uint8))
    assert t.info["source"] == "hvm-hdf5"


def test_metadata_round_trips_with_the_bundled_csv(release):
    path, out = release
    if not HVM_CSV.is_file():
        pytest.skip("bundled HvM CSV absent")
    t = import_hvm_hdf5(path, stimulus_csv=HVM_CSV)
    rows = out["rows"]
    assert list(t.stimuli["stimulus_id"]) == rows["image_id"].tolist()
    for col_t, col_csv in (
        ("category", "category_name"),
        ("object", "object_name"),
        ("background_id", "background_id"),
        ("filename", "image_file_name"),
        ("variation", "variation"),
    ):
        assert t.stimuli[col_t].tolist() == rows[col_csv].tolist(), col_t
    for col in ("ty", "tz", "rxy", "rxz", "ryz", "s"):
        np.testing.assert_allclose(t.stimuli[col], rows[col])
    extra = [json.loads(e) for e in t.stimuli["extra"]]
    np.testing.assert_allclose([e["rxy_semantic"] for e in extra], rows["rxy_semantic"])


def test_preset_keeps_all_v4_without_per_site_animals(release, caplog):
    path, out = release
    t = import_hvm_hdf5(path, build_selection(preset="majajhong2015"), stimulus_csv=None)
    assert list(t.stimuli["stimulus_id"]) == out["rows"].loc[out["rows"]["variation"] == 6, "image_id"].tolist()
    assert t.sites["region"].value_counts().to_dict() == {"IT": 7, "V4": 5}
    assert "cannot drop Tito" in caplog.text
    assert t.trials.shape == (12, 11, 4)
    # with the file of Tito's sites the preset asks for, they are dropped and the warning is not given
    caplog.clear()
    ids = path.parent / "tito_v4.txt"
    ids.write_text("V4-001\nV4-003\n")
    t = import_hvm_hdf5(path, build_selection(preset="majajhong2015", exclude_sites=[str(ids)]), stimulus_csv=None)
    assert t.sites["region"].value_counts().to_dict() == {"IT": 7, "V4": 3}
    assert "V4-001" not in set(t.sites["site_id"]) and "cannot drop Tito" not in caplog.text


def test_preset_drops_titos_v4_when_animals_are_given(tmp_path):
    rng = np.random.default_rng(6)
    animals = ["Chabo", "Tito"] * 6
    path = tmp_path / "v.hdf5"
    out = write_hvm_hdf5(path, hvm_rows({6: 10}), n_v4=5, n_it=7, reps={6: 3}, rng=rng, animal_info=animals)
    t = import_hvm_hdf5(path, build_selection(preset="majajhong2015"), stimulus_csv=None)
    tito_v4 = {c for c in out["v4_cols"] if animals[c] == "Tito"}
    assert len(t.sites) == 12 - len(tito_v4)
    assert not ((t.sites["animal"] == "Tito") & (t.sites["region"] == "V4")).any()


def test_other_time_bins_are_refused(release):
    path, _ = release
    with pytest.raises(UserError, match="70-170"):
        import_hvm_hdf5(path, build_selection(time_bin="0-50"), stimulus_csv=None)
    t = import_hvm_hdf5(path, build_selection(time_bin="70-170", variation="3", region="IT"), stimulus_csv=None)
    assert len(t.stimuli) == 10 and len(t.sites) == 7


def test_not_the_release_layout(tmp_path):
    import h5py

    with h5py.File(tmp_path / "x.hdf5", "w") as f:
        f["something"] = np.zeros(3)
    with pytest.raises(UserError, match="missing images, image_meta"):
        import_hvm_hdf5(tmp_path / "x.hdf5")
