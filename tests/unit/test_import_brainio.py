"""BrainIO importer: the real fixtures, MajajHong-shaped assemblies written like BrainIO does, the preset."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from precompute.core.errors import UserError
from precompute.datasets.importers.brainio import import_brainio
from precompute.datasets.importers.brainio_assembly import read_assembly
from precompute.datasets.importers.selection import Selection, build_selection
from precompute.datasets.importers.validation import ImportRefusedError
from precompute.datasets.reliability import split_half_reliability
from tests.unit.test_import_support import (
    FIXTURES,
    hvm_rows,
    majajhong_sites,
    write_assembly,
    write_stimulus_set,
)


# ---------------------------------------------------------------------------- the real BrainIO fixtures
def test_testme_fixture_trial_averages():
    a = read_assembly(FIXTURES / "assy_test_TestMe.nc")
    # data (presentation, neuroid) = 1..18; stimulus_id n0 n1 n1 n0 n4 n9 (n0 twice with repetition 1)
    assert list(a.stimulus_ids) == ["n0", "n1", "n4", "n9"]
    assert list(a.counts) == [2, 2, 1, 1]
    ref = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12], [13, 14, 15], [16, 17, 18]], float)
    expected = np.stack([(ref[0] + ref[3]) / 2, (ref[1] + ref[2]) / 2, ref[4], ref[5]], axis=1)
    np.testing.assert_array_equal(a.responses, expected)
    assert list(a.sites["neuroid_id"]) == ["alpha", "beta", "gamma"]
    assert list(a.sites["foo"]) == [1, 2, 5]


def test_package_assembly_fixture_with_time_bin_and_image_id():
    a = read_assembly(FIXTURES / "assy_test_package_assembly.nc")
    assert a.id_name == "image_id"
    assert list(a.stimulus_ids) == ["n0", "n1", "n2", "n3", "n4", "n5"]
    np.testing.assert_array_equal(a.responses, np.arange(1, 19, dtype=float).reshape(6, 3).T)
    assert set(a.sites.columns) >= {"neuroid_id", "neuroid_type"}


def test_extras_fixture_refused_clearly():
    with pytest.raises(UserError, match=r"dims \(event\).*presentation.*neuroid"):
        read_assembly(FIXTURES / "assy_test_package_assembly_extras.nc")


def test_fixture_import_reports_every_problem_at_once(tmp_path):
    rng = np.random.default_rng(0)
    ids = ["n0", "n1", "n4"]  # n9 missing from the CSV
    csv = tmp_path / "s.csv"
    pd.DataFrame({"stimulus_id": ids, "filename": [f"{i}.png" for i in ids]}).to_csv(csv, index=False)
    import zipfile

    from tests.unit.test_import_support import png_bytes

    with zipfile.ZipFile(tmp_path / "s.zip", "w") as z:
        for i in ids[:2]:  # n4's image missing
            z.writestr(f"{i}.png", png_bytes(rng))
    with pytest.raises(ImportRefusedError) as err:
        import_brainio(FIXTURES / "assy_test_TestMe.nc", csv, tmp_path / "s.zip")
    text = str(err.value)
    fields = {p.field for p in err.value.problems}
    assert "n9" in text and "not in s.csv" in text  # unknown stimulus
    assert "n4" in text and "image file is not in s.zip" in text  # missing image
    assert "at least 10" in text  # too few stimuli
    assert "region" in fields and "alpha" in text  # sites without region
    assert len(err.value.problems) == 4


# ---------------------------------------------------------------------------- MajajHong-shaped assemblies
@pytest.fixture
def mh(tmp_path):
    """A small MajajHong2015-shaped set: 296 sites, V0/V3/V6 stimuli with real HvM ids, 3 time bins."""
    rng = np.random.default_rng(1)
    rows = hvm_rows({0: 4, 3: 6, 6: 12})
    csv, zpath = write_stimulus_set(tmp_path, rows, rng=rng)
    ids = rows["image_id"].tolist()
    reps = {s: int(rng.integers(2, 5)) for s in ids}
    sites = majajhong_sites()
    nc = tmp_path / "assy_dicarlo_MajajHong2015_test.nc"
    ref = write_assembly(
        nc,
        sites,
        ids,
        reps,
        rng=rng,
        time_bins=[(0, 50), (70, 170), (170, 270)],
        extra_attrs={"identifier": "dicarlo.MajajHong2015.test"},
    )
    return {"rows": rows, "csv": csv, "zip": zpath, "nc": nc, "ref": ref, "sites": sites, "ids": ids, "reps": reps}


def test_majajhong_trial_averages_equal_float64_reference(mh):
    t = import_brainio(mh["nc"], mh["csv"], mh["zip"], build_selection(time_bin="70-170"), chunk_presentations=7)
    ref_means = mh["ref"]["means"][1]  # the 70-170 bin
    assert list(t.stimuli["stimulus_id"]) == mh["ids"]  # CSV order
    assert list(t.sites["site_id"]) == mh["sites"]["neuroid_id"].tolist()
    np.testing.assert_allclose(t.responses, ref_means, rtol=1e-6, atol=1e-6)
    assert t.responses.dtype == np.float32 and t.trials.dtype == np.float32
    # trials: repetitions in `repetition` order, NaN padded past each stimulus' count
    ref_trials = mh["ref"]["trials"][1]
    np.testing.assert_allclose(t.trials, ref_trials, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(t.sites["reliability"], split_half_reliability(ref_trials), atol=1e-6)
    assert t.info["source"] == "brainio" and t.info["title"] == "dicarlo.MajajHong2015.test"
    # neuroid coordinates go to sites (array from `arr`) and extra
    row = t.sites.iloc[0]
    assert (row["region"], row["animal"], row["electrode_array"], row["subregion"]) == ("V4", "Chabo", "P", "V4")
    assert set(json.loads(row["extra"])) == {"row", "col", "x", "y", "hemisphere"}
    assert (t.stimuli["width"] == 12).all() and len(t.images) == len(mh["ids"])


def test_chunk_size_does_not_change_the_result(mh):
    sel = build_selection(time_bin="70-170")
    a = import_brainio(mh["nc"], mh["csv"], mh["zip"], sel, chunk_presentations=5)
    b = import_brainio(mh["nc"], mh["csv"], mh["zip"], sel, chunk_presentations=100_000)
    np.testing.assert_array_equal(a.responses, b.responses)
    np.testing.assert_array_equal(a.trials, b.trials)


def test_time_bin_window_averages_the_bins_inside_it(mh):
    t = import_brainio(mh["nc"], mh["csv"], mh["zip"], build_selection(time_bin="0-170"))
    np.testing.assert_allclose(
        t.responses, np.nanmean(mh["ref"]["trials"][:2].mean(axis=0), axis=2), rtol=1e-5, atol=1e-6
    )


def test_several_time_bins_need_a_choice(mh):
    with pytest.raises(UserError, match="--time-bin"):
        import_brainio(mh["nc"], mh["csv"], mh["zip"])
    with pytest.raises(UserError, match="no time bin"):
        import_brainio(mh["nc"], mh["csv"], mh["zip"], build_selection(time_bin="300-400"))


def test_preset_selects_exactly_the_papers_stimuli_and_sites(mh):
    t = import_brainio(mh["nc"], mh["csv"], mh["zip"], build_selection(preset="majajhong2015"))
    v6 = mh["rows"].loc[mh["rows"]["variation"] == 6, "image_id"].tolist()
    assert list(t.stimuli["stimulus_id"]) == v6
    expected_sites = [s for s in mh["sites"]["neuroid_id"] if not s.startswith("Tito_L_P_")]
    assert list(t.sites["site_id"]) == expected_sites
    assert t.sites["region"].value_counts().to_dict() == {"IT": 168, "V4": 88}
    pos = [mh["ids"].index(s) for s in v6]
    keep = [i for i, s in enumerate(mh["sites"]["neuroid_id"]) if not s.startswith("Tito_L_P_")]
    np.testing.assert_allclose(t.responses, mh["ref"]["means"][1][np.ix_(keep, pos)], rtol=1e-6, atol=1e-6)


def test_selection_options_variation_region_exclude(mh, tmp_path):
    ids_file = tmp_path / "bad.txt"
    ids_file.write_text("# bad electrodes\nChabo_L_P_0_0\nChabo_L_P_0_1\n")
    sel = build_selection(variation="0,3", time_bin="70-170", region="V4", exclude_sites=[str(ids_file), "Tito_*"])
    t = import_brainio(mh["nc"], mh["csv"], mh["zip"], sel)
    assert set(t.stimuli["variation"]) == {0, 3} and len(t.stimuli) == 10
    assert len(t.sites) == 86 and set(t.sites["region"]) == {"V4"}
    assert not t.sites["site_id"].str.startswith("Tito").any()


def test_public_assembly_has_no_variation_6(tmp_path):
    rng = np.random.default_rng(2)
    rows = hvm_rows({0: 6, 3: 6})
    csv, zpath = write_stimulus_set(tmp_path, rows, rng=rng, new_style=True)
    ids = rows["image_id"].tolist()
    write_assembly(tmp_path / "pub.nc", majajhong_sites(4, 0, 4), ids, dict.fromkeys(ids, 2), rng=rng)
    with pytest.raises(UserError, match=r"levels present: 0, 3.*full or private"):
        import_brainio(tmp_path / "pub.nc", csv, zpath, build_selection(preset="majajhong2015"))


@pytest.mark.parametrize(
    "name,dims",
    [
        ("data", ("presentation", "neuroid", "time_bin")),
        (None, ("time_bin", "neuroid", "presentation")),
        ("my_assembly", ("presentation", "neuroid")),
    ],
)
def test_data_variable_names_and_dim_orders(tmp_path, name, dims):
    rng = np.random.default_rng(3)
    rows = hvm_rows({6: 10})
    csv, zpath = write_stimulus_set(tmp_path, rows, rng=rng, new_style=True)
    ids = rows["image_id"].tolist()
    reps = {s: 1 + i % 3 for i, s in enumerate(ids)}
    ref = write_assembly(
        tmp_path / "a.nc", majajhong_sites(3, 0, 2), ids, reps, rng=rng, dims=dims, name=name, id_coord="stimulus_id"
    )
    t = import_brainio(tmp_path / "a.nc", csv, zpath)
    np.testing.assert_allclose(t.responses, ref["means"][0], rtol=1e-6, atol=1e-6)


def test_hvm_stimulus_metadata_round_trips(mh):
    """The HvM CSV's rows come back unchanged from stimuli columns + extra."""
    t = import_brainio(mh["nc"], mh["csv"], mh["zip"], build_selection(time_bin="70-170"))
    extra = pd.DataFrame([json.loads(e) for e in t.stimuli["extra"]])
    back = pd.DataFrame(
        {
            "image_id": t.stimuli["stimulus_id"],
            "object_name": t.stimuli["object"],
            "category_name": t.stimuli["category"],
            "background_id": t.stimuli["background_id"],
            "image_file_name": t.stimuli["filename"],
            "variation": t.stimuli["variation"].astype(int),
            "ty": t.stimuli["ty"],
            "tz": t.stimuli["tz"],
            "rxy": t.stimuli["rxy"],
            "rxz": t.stimuli["rxz"],
            "ryz": t.stimuli["ryz"],
            "s": t.stimuli["s"],
        }
    )
    back = pd.concat([back, extra], axis=1)[mh["rows"].columns]
    pd.testing.assert_frame_equal(back, mh["rows"], check_dtype=False)


def test_nan_site_refused_then_dropped(tmp_path):
    rng = np.random.default_rng(4)
    rows = hvm_rows({6: 10})
    csv, zpath = write_stimulus_set(tmp_path, rows, rng=rng)
    ids = rows["image_id"].tolist()
    write_assembly(tmp_path / "a.nc", majajhong_sites(3, 0, 2), ids, dict.fromkeys(ids, 2), rng=rng)
    import h5py

    with h5py.File(tmp_path / "a.nc", "r+") as f:
        data = f["__xarray_dataarray_variable__"]
        data[1, 3, 0] = np.nan
        data[4, :, 0] = 2.5  # constant site
    with pytest.raises(ImportRefusedError) as err:
        import_brainio(tmp_path / "a.nc", csv, zpath)
    text = str(err.value)
    assert "Chabo_L_P_0_1" in text and "--drop-bad-sites" in text and "Tito_L_A_0_0" in text
    t = import_brainio(tmp_path / "a.nc", csv, zpath, Selection(), drop_bad_sites=True)
    assert len(t.sites) == 3 and set(t.extra["dropped_sites"]) == {"Chabo_L_P_0_1", "Tito_L_A_0_0"}
