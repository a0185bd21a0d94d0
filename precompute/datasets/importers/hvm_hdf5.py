"""Import the original DiCarlo release, `ventral_neural_data.hdf5` (docs/FORMATS.md, section 2).

    images                          (5760, 256, 256) grayscale
    image_meta/                     category, object_name, image_id, rotation_xy/xz/yz, size,
                                    translation_y/z, variation_level (b'V0', b'V3', b'V6')
    neural_meta/                    V4_NEURONS, IT_NEURONS, PIT/CIT/AIT_NEURONS (site column indices),
                                    ANIMAL_INFO, ARRAY_INFO
    time_averaged_trial_averaged    (5760 images, 296 sites)
    time_averaged/variation_level_{0,3,6}   (repetitions, images of that level, sites), 70-170 ms

The file does not name electrodes, so sites get readable ids from region and index: `V4-017` is the
18th column listed in neural_meta/V4_NEURONS. `size` in image_meta is the object's scale (`s`); where it
is constant (an image size) it is kept in `extra` instead. Metadata the release lacks (background id,
file name, semantic rotations) is added from the bundled HvM stimulus CSV when it is in the repository.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.core.errors import UserError
from precompute.datasets.importers.common import (
    encode_png,
    finish,
    input_hash,
    mean_over_trials,
    normalise_sites,
    normalise_stimuli,
)
from precompute.datasets.importers.selection import Selection, site_mask, stimulus_mask, variation_level
from precompute.datasets.importers.validation import Report
from precompute.datasets.tables import DatasetTables

log = logging.getLogger(__name__)

#: the release's time window: its time-averaged data are the 70-170 ms means
RELEASE_TIME_BIN = (70.0, 170.0)
REGION_INDEX = (("V4", "V4_NEURONS"), ("IT", "IT_NEURONS"))
SUBREGION_INDEX = (("pIT", "PIT_NEURONS"), ("cIT", "CIT_NEURONS"), ("aIT", "AIT_NEURONS"))
#: image_meta field -> column name used by normalise_stimuli
META_NAMES = {
    "image_id": "image_id",
    "category": "category",
    "object_name": "object_name",
    "rotation_xy": "rxy",
    "rotation_xz": "rxz",
    "rotation_yz": "ryz",
    "translation_y": "ty",
    "translation_z": "tz",
    "variation_level": "variation",
}
BUNDLED_CSV = Path(__file__).resolve().parent.parent / "hvm_data" / "hvm_stimuli.csv"
IMAGE_BLOCK = 256


def _text_array(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "SO":
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values], dtype=object)
    return values


def _read_meta(f, path: Path) -> pd.DataFrame:
    meta = f["image_meta"]
    n = f["images"].shape[0]
    columns = {}
    for name in meta:
        values = meta[name][()]
        if values.ndim != 1 or len(values) != n:
            log.warning("%s: image_meta/%s has shape %s, not (%d,): skipped", path, name, values.shape, n)
            continue
        columns[META_NAMES.get(name, name)] = _text_array(values)
    frame = pd.DataFrame(columns)
    if "size" in frame.columns:
        sizes = pd.to_numeric(frame["size"], errors="coerce")
        if sizes.nunique() > 1 and "s" not in frame.columns:
            frame = frame.rename(columns={"size": "s"})
    return frame


def _enrich(frame: pd.DataFrame, csv_path: Path | None) -> pd.DataFrame:
    """Add columns the release lacks from the HvM stimulus CSV (matched by image_id); never overrides."""
    if csv_path is None or not Path(csv_path).is_file():
        return frame
    extra = pd.read_csv(csv_path, dtype={"image_id": str})
    if "image_id" not in extra.columns:
        return frame
    add = [
        c
        for c in extra.columns
        if c != "image_id"
        and c not in frame.columns
        and not (c == "object_name" and "object_name" in frame.columns)
        and not (c == "category_name" and "category" in frame.columns)
        and not (c == "size" and "s" in frame.columns and "size" in frame.columns)
    ]
    if not add:
        return frame
    merged = frame.merge(extra[["image_id", *add]], on="image_id", how="left", sort=False)
    return merged


def import_hvm_hdf5(
    path: str | Path,
    selection: Selection = Selection(),
    *,
    drop_bad_sites: bool = False,
    stimulus_csv: str | Path | None = BUNDLED_CSV,
) -> DatasetTables:
    """Read `ventral_neural_data.hdf5`; refuse (UserError) with every problem found."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--path {path}: file not found; give the release's ventral_neural_data.hdf5")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"--path {path}: cannot be read as HDF5 ({exc})") from None
    with f:
        missing = [n for n in ("images", "image_meta", "neural_meta", "time_averaged_trial_averaged") if n not in f]
        if missing:
            raise UserError(
                f"--path {path}: not the HvM release layout: missing {', '.join(missing)} "
                "(docs/FORMATS.md, section 2); for a BrainIO .nc file use --format brainio"
            )
        if selection.time_bin is not None and tuple(selection.time_bin) != RELEASE_TIME_BIN:
            raise UserError(
                f"--time-bin {selection.time_bin[0]:g}-{selection.time_bin[1]:g}: the HDF5 release holds "
                "only the 70-170 ms average; leave out --time-bin or use --time-bin 70-170"
            )
        report = Report()
        meta = _read_meta(f, path)
        if "image_id" not in meta.columns:
            raise UserError(f"--path {path}: image_meta/image_id is missing")
        meta = _enrich(meta, Path(stimulus_csv) if stimulus_csv else None)
        levels = np.array([variation_level(v) for v in meta["variation"]]) if "variation" in meta.columns else None
        rows = np.arange(len(meta))
        smask = stimulus_mask(
            meta["variation"].tolist() if "variation" in meta.columns else None, selection, source=f"{path}:image_meta"
        )
        if smask is not None:
            rows = rows[smask]

        sites_all = _sites(f, path)
        cols = np.flatnonzero(_selected_sites(sites_all, selection))
        sites = sites_all.iloc[cols].reset_index(drop=True)

        trials, counts = _trials(f, rows, levels, cols)
        if trials is not None:
            responses = mean_over_trials(trials, counts)
        else:
            log.info("%s has no time_averaged/ per-trial data: importing trial averages only", path)
            ta = f["time_averaged_trial_averaged"]
            responses = np.asarray(ta[rows, :], dtype=np.float64)[:, cols].T

        images, widths, heights = _images(f["images"], rows)

    selected = meta.iloc[rows].reset_index(drop=True)
    stimuli = normalise_stimuli(selected, id_column="image_id")
    stimuli["width"], stimuli["height"] = widths, heights
    info = {
        "source": "hvm-hdf5",
        "title": "HvM (Majaj, Hong et al. 2015), DiCarlo release",
        "description": f"ventral_neural_data.hdf5, time-averaged 70-170 ms; selection: {selection.describe()}",
        "n_repetitions": int(np.median(counts)) if counts is not None and counts.size else None,
        "input_hash": input_hash([path]),
    }
    return finish(
        report=report,
        info=info,
        stimuli=stimuli,
        images=images,
        sites=normalise_sites(sites, id_column="site_id", used=()),
        responses=responses,
        trials=trials,
        files={"stimuli": f"{path}:image_meta", "sites": f"{path}:neural_meta", "responses": f"{path}:time_averaged"},
        fields={"stimulus_id": "image_id", "site_id": "V4_NEURONS/IT_NEURONS"},
        drop_bad_sites=drop_bad_sites,
    )


def _selected_sites(sites_all: pd.DataFrame, selection: Selection) -> np.ndarray:
    """(sites,) bool: the sites the selection keeps. The release names no electrodes or animals, so a preset
    cannot drop Tito's V4 sites by itself: say so (or how many an exclusion file kept)."""
    keep = site_mask(
        sites_all["site_id"].tolist(),
        selection,
        {c: sites_all[c].tolist() for c in ("region", "animal") if c in sites_all.columns},
    )
    if selection.preset and "animal" not in sites_all.columns:
        v4 = (sites_all["region"] == "V4").to_numpy()
        if v4.any() and (keep & v4).sum() == v4.sum():  # nothing dropped Tito's sites (no file, no --region)
            log.warning(
                "the HDF5 release does not name electrodes or animals: preset %s cannot drop Tito's 40 V4 "
                "sites and keeps all %d V4 sites; list them in a file and pass --exclude-sites FILE",
                selection.preset,
                int(v4.sum()),
            )
        elif v4.any():
            log.info(
                "preset %s: %d of %d V4 sites kept after --exclude-sites / --region",
                selection.preset,
                int((keep & v4).sum()),
                int(v4.sum()),
            )
    return keep


def _images(ds, rows: np.ndarray) -> tuple[list[bytes], list[int], list[int]]:
    """The selected images as PNG bytes with their sizes, read IMAGE_BLOCK at a time."""
    images, widths, heights = [], [], []
    for a in range(0, len(rows), IMAGE_BLOCK):
        block = np.asarray(ds[rows[a : a + IMAGE_BLOCK]])
        for pixels in block:
            png, w, h = encode_png(pixels)
            images.append(png), widths.append(w), heights.append(h)
    return images, widths, heights


def _sites(f, path: Path) -> pd.DataFrame:
    """One row per site column: readable id, region, subregion and (where the file has it) animal/array."""
    n_sites = f["time_averaged_trial_averaged"].shape[1]
    nm = f["neural_meta"]
    region = np.full(n_sites, None, dtype=object)
    site_id = np.array([f"site-{i:03d}" for i in range(n_sites)], dtype=object)
    for name, key in REGION_INDEX:
        if key in nm:
            for k, col in enumerate(np.asarray(nm[key][()], dtype=np.int64).ravel()):
                if 0 <= col < n_sites:
                    region[col], site_id[col] = name, f"{name}-{k:03d}"
    subregion = np.where(region == "V4", "V4", None).astype(object)
    for name, key in SUBREGION_INDEX:
        if key in nm:
            idx = np.asarray(nm[key][()], dtype=np.int64).ravel()
            subregion[idx[(idx >= 0) & (idx < n_sites)]] = name
    frame = pd.DataFrame(
        {"site_id": site_id, "region": region, "subregion": subregion, "hdf5_column": np.arange(n_sites)}
    )
    for key, column in (("ANIMAL_INFO", "animal"), ("ARRAY_INFO", "array")):
        if key in nm:
            values = nm[key][()]
            if getattr(values, "ndim", 0) == 1 and len(values) == n_sites:
                frame[column] = _text_array(values)
            else:
                log.info(
                    "%s: neural_meta/%s has shape %s: not one value per site, not used",
                    path,
                    key,
                    getattr(values, "shape", None),
                )
    return frame


def _trials(f, rows: np.ndarray, levels: np.ndarray | None, cols: np.ndarray):
    """(sites, stimuli, max reps) trials of the selected rows and site columns, with per-stimulus counts."""
    group = f.get("time_averaged")
    if group is None or levels is None:
        return None, None
    needed = sorted({int(levels[r]) for r in rows})
    datasets = {}
    for level in needed:
        name = f"variation_level_{level}"
        if name not in group:
            return None, None
        datasets[level] = group[name]
    max_reps = max(ds.shape[0] for ds in datasets.values())
    trials = np.full((len(cols), len(rows), max_reps), np.nan, dtype=np.float32)
    counts = np.zeros(len(rows), dtype=np.int64)
    for level, ds in datasets.items():
        level_rows = np.flatnonzero(levels == level)  # file rows of this level, in order
        if ds.shape[1] != len(level_rows):
            raise UserError(
                f"time_averaged/variation_level_{level} has {ds.shape[1]} images but image_meta lists "
                f"{len(level_rows)} images of variation {level}"
            )
        where = np.flatnonzero(np.isin(rows, level_rows))  # positions among the selected stimuli
        within = np.searchsorted(level_rows, rows[where])  # their index inside the level's dataset
        for a in range(0, ds.shape[0]):  # one repetition at a time: (images, sites) slabs
            slab = np.asarray(ds[a])
            trials[:, where, a] = slab[within][:, cols].T
        counts[where] = ds.shape[0]
    return trials, counts
