"""Writers of small input files in the real layouts (used by the other test_import_* files), and checks
that what they write has the on-disk layout of the real BrainIO fixtures."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "brainio"
HVM_CSV = REPO / "precompute" / "datasets" / "hvm_data" / "hvm_stimuli.csv"


def hvm_rows(per_level: dict[int, int], seed: int = 0) -> pd.DataFrame:
    """Real HvM metadata rows (the repository copy), `per_level[v]` rows of each variation level."""
    if not HVM_CSV.is_file():
        pytest.skip("precompute/datasets/hvm_data/hvm_stimuli.csv is not in the repository yet")
    frame = pd.read_csv(HVM_CSV, dtype={"image_id": str})
    parts = [frame[frame["variation"] == v].head(n) for v, n in per_level.items()]
    return pd.concat(parts).reset_index(drop=True)


def png_bytes(rng: np.random.Generator, size: tuple[int, int] = (12, 12), mode: str = "L", fmt: str = "PNG") -> bytes:
    shape = size[::-1] + ((3,) if mode == "RGB" else ())
    img = Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def majajhong_sites(n_chabo_v4: int = 88, n_tito_v4: int = 40, n_it: int = 168) -> pd.DataFrame:
    """Neuroid coordinates shaped like MajajHong2015's (animal_hemisphere_array_row_col ids)."""
    rows = []
    for animal, n, region, arrays in (
        ("Chabo", n_chabo_v4, "V4", "P"),
        ("Tito", n_tito_v4, "V4", "P"),
        ("Chabo", n_it // 2, "IT", "AM"),
        ("Tito", n_it - n_it // 2, "IT", "AM"),
    ):
        for k in range(n):
            arr = arrays[k % len(arrays)]
            row, col = divmod(k, 10)
            sub = "V4" if region == "V4" else ("pIT", "cIT", "aIT")[k % 3]
            rows.append(
                {
                    "neuroid_id": f"{animal}_L_{arr}_{row}_{col}",
                    "region": region,
                    "subregion": sub,
                    "animal": animal,
                    "arr": arr,
                    "row": row,
                    "col": col,
                    "x": 0.4 * col,
                    "y": 0.4 * row,
                    "hemisphere": "L",
                }
            )
    return pd.DataFrame(rows)


def write_stimulus_set(
    folder: Path, rows: pd.DataFrame, *, rng: np.random.Generator, new_style: bool = False, extra_files: bool = True
) -> tuple[Path, Path]:
    """A BrainIO stimulus set: CSV (columns shuffled) + flat ZIP with the images and unrelated extra files."""
    frame = rows.copy()
    if new_style:
        frame.insert(0, "stimulus_id", frame["image_id"])
        frame["filename"] = frame["image_file_name"]
    frame = frame[list(rng.permutation(frame.columns))]
    csv = folder / ("stimulus_test.csv" if new_style else "image_dicarlo_hvm_test.csv")
    frame.to_csv(csv, index=False)
    zpath = csv.with_suffix(".zip")
    with zipfile.ZipFile(zpath, "w") as z:
        for name in rows["image_file_name"]:
            z.writestr(name, png_bytes(rng))
        if extra_files:
            z.writestr("README.txt", "not an image")
            z.writestr("unrelated_image.png", png_bytes(rng))
    return csv, zpath


def write_assembly(
    path: Path,
    sites: pd.DataFrame,
    stim_ids: list[str],
    reps: dict[str, int],
    *,
    rng: np.random.Generator,
    time_bins: list[tuple[int, int]] = ((70, 170),),
    dims: tuple[str, ...] = ("neuroid", "presentation", "time_bin"),
    name: str | None = None,
    id_coord: str = "image_id",
    extra_attrs: dict | None = None,
) -> dict:
    """A neural assembly written the way BrainIO writes it: MultiIndex levels as plain 1-D coordinates.

    Repetitions are shuffled over presentations. Returns the float64 reference: per time bin the
    (sites, stimuli, reps) trials ordered by repetition, and the trial means.
    """
    import xarray as xr

    pres_stim = np.array([s for s in stim_ids for _ in range(reps[s])], dtype=object)
    pres_rep = np.array([r for s in stim_ids for r in range(reps[s])])
    order = rng.permutation(len(pres_stim))
    pres_stim, pres_rep = pres_stim[order], pres_rep[order]
    n_sites, n_pres, n_bins = len(sites), len(pres_stim), len(time_bins)
    values = rng.normal(size=(n_sites, n_pres, n_bins)).astype(np.float32) + rng.normal(size=(n_sites, 1, 1)).astype(
        np.float32
    )
    coords = {
        id_coord: ("presentation", pres_stim),
        "repetition": ("presentation", pres_rep),
        "stimulus": ("presentation", np.array([stim_ids.index(s) for s in pres_stim])),
    }
    for col in sites.columns:
        coords[col] = ("neuroid", sites[col].to_numpy(dtype=object if sites[col].dtype == object else None))
    coords["time_bin_start"] = ("time_bin", np.array([a for a, _ in time_bins]))
    coords["time_bin_end"] = ("time_bin", np.array([b for _, b in time_bins]))
    da = xr.DataArray(values, dims=("neuroid", "presentation", "time_bin"), coords=coords, name=name)
    da = da.transpose(*dims) if "time_bin" in dims else da.isel(time_bin=0, drop=True).transpose(*dims)
    if extra_attrs:
        da.attrs.update(extra_attrs)
    da.to_netcdf(path, engine="h5netcdf")
    # reference
    max_rep = max(reps.values())
    ref_trials = np.full((n_bins, n_sites, len(stim_ids), max_rep), np.nan)
    pos = {s: i for i, s in enumerate(stim_ids)}
    for p in range(n_pres):
        ref_trials[:, :, pos[pres_stim[p]], pres_rep[p]] = values[:, p, :].astype(np.float64).T
    return {"trials": ref_trials, "means": np.nanmean(ref_trials, axis=3)}


def write_hvm_hdf5(
    path: Path,
    rows: pd.DataFrame,
    *,
    n_v4: int,
    n_it: int,
    reps: dict[int, int],
    rng: np.random.Generator,
    animal_info: list[str] | None = None,
) -> dict:
    """A file in the layout of the DiCarlo release `ventral_neural_data.hdf5` (rows ordered V0, V3, V6)."""
    rows = rows.sort_values("variation", kind="stable").reset_index(drop=True)
    n_img, n_sites = len(rows), n_v4 + n_it
    images = rng.random((n_img, 16, 16)).astype(np.float32)
    site_cols = rng.permutation(n_sites)
    v4_cols, it_cols = np.sort(site_cols[:n_v4]), np.sort(site_cols[n_v4:])
    per_level = {}
    with h5py.File(path, "w") as f:
        f["images"] = images
        meta = f.create_group("image_meta")
        meta["image_id"] = rows["image_id"].to_numpy(dtype="S")
        meta["category"] = rows["category_name"].to_numpy(dtype="S")
        meta["object_name"] = rows["object_name"].to_numpy(dtype="S")
        for src, dst in (
            ("rxy", "rotation_xy"),
            ("rxz", "rotation_xz"),
            ("ryz", "rotation_yz"),
            ("s", "size"),
            ("ty", "translation_y"),
            ("tz", "translation_z"),
        ):
            meta[dst] = rows[src].to_numpy(dtype=np.float64)
        meta["variation_level"] = np.array([f"V{v}".encode() for v in rows["variation"]])
        nm = f.create_group("neural_meta")
        nm["V4_NEURONS"] = v4_cols
        nm["IT_NEURONS"] = it_cols
        nm["PIT_NEURONS"], nm["CIT_NEURONS"], nm["AIT_NEURONS"] = it_cols[0::3], it_cols[1::3], it_cols[2::3]
        if animal_info is not None:
            nm["ANIMAL_INFO"] = np.array(animal_info, dtype="S")
        else:
            nm["ANIMAL_INFO"] = np.array([b"Chabo", b"Tito"])  # not per site: not used
        nm["ARRAY_INFO"] = np.array([b"A", b"M", b"P"])
        grp = f.create_group("time_averaged")
        ta = np.zeros((n_img, n_sites))
        for level, n_rep in reps.items():
            idx = np.flatnonzero(rows["variation"].to_numpy() == level)
            data = rng.normal(size=(n_rep, len(idx), n_sites)).astype(np.float32)
            grp[f"variation_level_{level}"] = data
            ta[idx] = data.astype(np.float64).mean(axis=0)
            per_level[level] = (idx, data)
        f["time_averaged_trial_averaged"] = ta.astype(np.float32)
    return {
        "rows": rows,
        "images": images,
        "v4_cols": v4_cols,
        "it_cols": it_cols,
        "per_level": per_level,
        "trial_averaged": ta,
    }


def test_written_assembly_has_the_real_brainio_layout(tmp_path):
    """Our writer's layout matches the real fixtures': dimension scales, coordinates attribute, 1-D levels."""
    rng = np.random.default_rng(0)
    sites = majajhong_sites(2, 1, 2)
    write_assembly(tmp_path / "a.nc", sites, ["a", "b"], {"a": 2, "b": 3}, rng=rng)
    for path in (tmp_path / "a.nc", FIXTURES / "assy_test_package_assembly.nc"):
        with h5py.File(path, "r") as f:
            data_name = "__xarray_dataarray_variable__"
            assert data_name in f
            for dim in ("presentation", "neuroid", "time_bin"):
                assert f[dim].attrs["CLASS"] == b"DIMENSION_SCALE"
            coords = f[data_name].attrs["coordinates"]
            coords = coords.decode() if isinstance(coords, bytes) else coords
            assert {"image_id", "neuroid_id", "time_bin_start"} <= set(coords.split())
            assert f["image_id"].ndim == 1 and f["image_id"].dtype.kind == "O"  # variable-length strings


def test_written_hvm_hdf5_has_the_release_layout(tmp_path):
    rng = np.random.default_rng(0)
    out = write_hvm_hdf5(
        tmp_path / "v.hdf5", hvm_rows({0: 2, 3: 3, 6: 3}), n_v4=2, n_it=3, reps={0: 2, 3: 3, 6: 2}, rng=rng
    )
    with h5py.File(tmp_path / "v.hdf5", "r") as f:
        assert f["images"].shape == (8, 16, 16)
        assert f["time_averaged/variation_level_3"].shape == (3, 3, 5)
        assert f["image_meta/variation_level"][0] == b"V0"
        np.testing.assert_allclose(f["time_averaged_trial_averaged"][()], out["trial_averaged"], rtol=1e-6)
