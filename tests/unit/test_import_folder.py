"""The plain-folder importer, and every refusal of FORMATS.md (reported together)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from precompute.datasets.importers.folder import import_folder
from precompute.datasets.importers.selection import build_selection
from precompute.datasets.importers.validation import ImportRefusedError
from tests.unit.test_import_support import png_bytes

N_STIM, N_SITES = 12, 4


def make_folder(root, rng, kind="responses.csv", n_stim=N_STIM, n_sites=N_SITES):
    """A valid folder; returns the float64 reference responses (sites x stimuli) and trials."""
    root.mkdir(exist_ok=True)
    (root / "img").mkdir(exist_ok=True)
    formats = [
        ("PNG", "L", (12, 12), "png"),
        ("JPEG", "RGB", (20, 10), "jpg"),
        ("TIFF", "L", (8, 8), "tif"),
        ("PNG", "RGB", (5, 7), "png"),
    ]
    files = []
    for i in range(n_stim):
        fmt, mode, size, ext = formats[i % len(formats)]
        name = f"img/s{i:02d}.{ext}"
        (root / name).write_bytes(png_bytes(rng, size, mode, fmt))
        files.append(name)
    stim = pd.DataFrame(
        {
            "stimulus_id": [f"s{i:02d}" for i in range(n_stim)],
            "filename": files,
            "category": ["a", "b"] * (n_stim // 2),
            "variation": [0, 6] * (n_stim // 2),
            "lab_note": [f"n{i}" for i in range(n_stim)],
        }
    )
    sites = pd.DataFrame(
        {
            "site_id": [f"e{k}" for k in range(n_sites)],
            "region": ["V4", "IT"] * (n_sites // 2),
            "animal": "m1",
            "rf_x_deg": 1.5,
            "depth_mm": np.arange(n_sites, dtype=float),
        }
    )
    stim.to_csv(root / "stimuli.csv", index=False)
    sites.to_csv(root / "sites.csv", index=False)
    (root / "dataset.json").write_text(json.dumps({"title": "My lab", "visual_degrees": 10}))
    reps = rng.integers(2, 5, size=(n_sites, n_stim))
    trials = np.full((n_sites, n_stim, 4), np.nan)
    rows = []
    for a in range(n_sites):
        for j in range(n_stim):
            for r in range(reps[a, j]):
                trials[a, j, r] = rng.normal()
                rows.append((sites.site_id[a], stim.stimulus_id[j], r + 1, trials[a, j, r]))
    means = np.nanmean(trials, axis=2)
    if kind == "trials.csv":
        df = pd.DataFrame(rows, columns=["site_id", "stimulus_id", "repetition", "response"])
        df.sample(frac=1, random_state=0).to_csv(root / kind, index=False)
    elif kind == "responses.csv":
        df = pd.DataFrame(
            [(sites.site_id[a], stim.stimulus_id[j], means[a, j]) for a in range(n_sites) for j in range(n_stim)],
            columns=["site_id", "stimulus_id", "response"],
        )
        df.sample(frac=1, random_state=0).to_csv(root / kind, index=False)
    else:
        np.save(root / kind, means)
    return means, trials


@pytest.mark.parametrize("kind", ["responses.csv", "trials.csv", "responses.npy"])
def test_folder_import(tmp_path, kind):
    rng = np.random.default_rng(7)
    means, trials = make_folder(tmp_path / "d", rng, kind)
    t = import_folder(tmp_path / "d")
    np.testing.assert_allclose(t.responses, means, rtol=1e-6, atol=1e-6)
    if kind == "trials.csv":
        np.testing.assert_allclose(t.trials, trials, rtol=1e-6, equal_nan=True)
        assert t.sites["reliability"].notna().all()
    else:
        assert t.trials is None
    assert t.info["title"] == "My lab" and t.info["visual_degrees"] == 10.0 and t.info["source"] == "folder"
    assert list(t.stimuli["width"][:4]) == [12, 20, 8, 5]
    modes = [Image.open(io.BytesIO(b)).mode for b in t.images[:4]]
    assert modes == ["L", "RGB", "L", "RGB"]
    # lossless for 8-bit PNG input
    src = Image.open(tmp_path / "d" / "img" / "s00.png")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(t.images[0]))), np.asarray(src))
    assert json.loads(t.stimuli["extra"][0]) == {"lab_note": "n0"}
    assert json.loads(t.sites["extra"][1]) == {"depth_mm": 1.0}
    assert (t.sites["rf_x_deg"] == 1.5).all()


def test_folder_selection(tmp_path):
    rng = np.random.default_rng(8)
    means, _ = make_folder(tmp_path / "d", rng, "responses.npy", n_stim=24)
    t = import_folder(tmp_path / "d", build_selection(variation="6", region="IT", exclude_sites=["e1"]))
    assert list(t.stimuli["stimulus_id"]) == [f"s{i:02d}" for i in range(1, 24, 2)]
    assert list(t.sites["site_id"]) == ["e3"]
    np.testing.assert_allclose(t.responses, means[[3]][:, 1::2], rtol=1e-6)


def test_a_selection_that_keeps_nothing_names_what_there_is(tmp_path, caplog):
    from precompute.core.errors import UserError

    make_folder(tmp_path / "d", np.random.default_rng(8), "responses.npy", n_stim=24)
    with pytest.raises(UserError, match=r"--variation 3: .* levels present: 0, 6"):
        import_folder(tmp_path / "d", build_selection(variation="3"))
    with pytest.raises(UserError, match=r"--region V1: no site is in that region; regions present: IT, V4"):
        import_folder(tmp_path / "d", build_selection(region="V1"))
    # a level that is absent next to one that is present: kept going, with a warning
    with caplog.at_level("WARNING"):
        t = import_folder(tmp_path / "d", build_selection(variation="3,6"))
    assert len(t.stimuli) == 12 and "no stimulus at level(s) 3 (present: 0, 6)" in caplog.text


def test_every_refusal_reported_together(tmp_path):
    """Duplicate ids, unknown ids, missing and unreadable images, NaN/inf, constant site, no region."""
    rng = np.random.default_rng(9)
    root = tmp_path / "d"
    make_folder(root, rng, "responses.csv")
    stim = pd.read_csv(root / "stimuli.csv", dtype=str)
    stim.loc[1, "stimulus_id"] = "s00"  # duplicate stimulus id
    stim.loc[2, "filename"] = "img/missing.png"  # no image file
    (root / "img" / "broken.png").write_bytes(b"not an image")
    stim.loc[3, "filename"] = "img/broken.png"  # unreadable image
    stim.to_csv(root / "stimuli.csv", index=False)
    sites = pd.read_csv(root / "sites.csv", dtype={"site_id": str})
    sites = pd.concat([sites, sites.iloc[[0]]])  # duplicate site id
    sites.loc[sites.site_id == "e3", "region"] = np.nan  # site with no region
    sites.to_csv(root / "sites.csv", index=False)
    resp = pd.read_csv(root / "responses.csv", dtype={"site_id": str, "stimulus_id": str})
    resp.loc[(resp.site_id == "e1") & (resp.stimulus_id == "s05"), "response"] = np.nan  # NaN
    resp.loc[(resp.site_id == "e1") & (resp.stimulus_id == "s06"), "response"] = np.inf
    resp.loc[resp.site_id == "e2", "response"] = 3.0  # constant site
    extra = pd.DataFrame([("e0", "ghost", 1.0), ("nobody", "s04", 1.0)], columns=resp.columns)
    pd.concat([resp, extra]).to_csv(root / "responses.csv", index=False)
    with pytest.raises(ImportRefusedError) as err:
        import_folder(root)
    text = str(err.value)
    messages = " | ".join(p.message for p in err.value.problems)
    for expected in (
        "duplicate stimulus ids",
        "duplicate site ids",
        "stimuli not in stimuli.csv",
        "sites not in sites.csv",
        "no image file",
        "cannot be read",
        "NaN, infinite",
        "same for every stimulus",
        "without a region",
    ):
        assert expected in messages, expected
    for ident in ("s00", "ghost", "nobody", "s02", "s03", "e1", "e2", "e3"):
        assert ident in text
    assert "--drop-bad-sites" in text and "stimuli.csv" in text and "responses.csv" in text


def test_drop_bad_sites_lists_them(tmp_path):
    rng = np.random.default_rng(10)
    root = tmp_path / "d"
    means, _ = make_folder(root, rng, "responses.npy")
    means[1, 3] = np.nan
    means[2] = 7.0
    np.save(root / "responses.npy", means)
    with pytest.raises(ImportRefusedError):
        import_folder(root)
    t = import_folder(root, drop_bad_sites=True)
    assert list(t.sites["site_id"]) == ["e0", "e3"]
    assert t.extra["dropped_sites"] == {"e1": "NaN or infinite responses", "e2": "constant responses"}
    np.testing.assert_allclose(t.responses, means[[0, 3]], rtol=1e-6)


def test_too_few_stimuli_and_missing_files(tmp_path):
    rng = np.random.default_rng(11)
    make_folder(tmp_path / "d", rng, "responses.npy", n_stim=8)
    with pytest.raises(ImportRefusedError, match="at least 10"):
        import_folder(tmp_path / "d")
    (tmp_path / "e").mkdir()
    with pytest.raises(ImportRefusedError) as err:
        import_folder(tmp_path / "e")
    assert len(err.value.problems) == 3  # stimuli.csv, sites.csv, no responses


def test_wrong_npy_shape(tmp_path):
    rng = np.random.default_rng(12)
    make_folder(tmp_path / "d", rng, "responses.npy")
    np.save(tmp_path / "d" / "responses.npy", np.zeros((3, 3)))
    with pytest.raises(ImportRefusedError, match=r"expected numbers shaped \(sites 4, stimuli 12\)"):
        import_folder(tmp_path / "d")
