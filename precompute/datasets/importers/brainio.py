"""Import a BrainIO / Brain-Score neural assembly with its stimulus set (FORMATS.md, section 1).

An assembly is one NetCDF-4 file holding one data variable (`data`, `__xarray_dataarray_variable__` or
the array's own name) with dims `presentation` and `neuroid` (optionally `time_bin`) in any order; each
level of the former MultiIndexes is a plain 1-D coordinate on its dimension. A presentation is one
trial: its stimulus (`stimulus_id` or `image_id`) and `repetition`. The stimulus set is a CSV (id in
`stimulus_id` or `image_id`, file name in `filename` or `image_file_name`) plus a flat ZIP of images.

The data are read in chunks of presentations straight into a (sites, stimuli, repetitions) trial array
of the selected sites and stimuli, so only the selection is ever held (the full MajajHong2015 file is
296 x 268,800 float32); trial averages and reliability are computed from that array.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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
from precompute.datasets.importers.selection import (
    Selection,
    site_mask,
    stimulus_mask,
    time_bin_indices,
)
from precompute.datasets.importers.validation import Report, duplicates
from precompute.datasets.tables import DatasetTables

log = logging.getLogger(__name__)

DATA_NAMES = ("data", "__xarray_dataarray_variable__")
#: presentations read per chunk (x sites x time bins x 4 bytes: ~20 MB for 296 sites)
CHUNK_PRESENTATIONS = 16384


# ---------------------------------------------------------------------------- the stimulus set
def read_stimulus_csv(report: Report, path: Path) -> tuple[pd.DataFrame, str, str | None]:
    """The stimulus CSV, its id column and its file-name column (problems go to `report`)."""
    try:
        frame = pd.read_csv(path, dtype={"stimulus_id": str, "image_id": str, "filename": str, "image_file_name": str})
    except FileNotFoundError:
        raise UserError(f"--stimuli {path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"--stimuli {path}: cannot be read as a CSV with a header row ({exc})") from None
    if "stimulus_id" in frame.columns:
        id_col = "stimulus_id"
        if "image_id" in frame.columns:
            differ = frame["stimulus_id"].astype(str) != frame["image_id"].astype(str)
            if differ.any():
                report.add(
                    str(path),
                    "stimulus_id/image_id",
                    "both id columns are present but differ",
                    "keep one id column, or make them equal",
                    frame.loc[differ, "stimulus_id"],
                )
    elif "image_id" in frame.columns:
        id_col = "image_id"
    else:
        raise UserError(
            f"--stimuli {path}: no id column; expected `stimulus_id` (or `image_id` in older sets); "
            f"the file has {', '.join(map(str, frame.columns))}"
        )
    file_col = (
        "filename" if "filename" in frame.columns else "image_file_name" if "image_file_name" in frame.columns else None
    )
    if file_col is None:
        report.add(
            str(path),
            "filename",
            "no file-name column (`filename` or `image_file_name`)",
            "add the image's name inside the ZIP as a `filename` column",
        )
    return frame, id_col, file_col


class ZipImages:
    """The stimulus ZIP: members found by exact name, else by base name (extra files are ignored)."""

    def __init__(self, path: Path):
        try:
            self.zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise UserError(f"--images {path}: file not found") from None
        except zipfile.BadZipFile:
            raise UserError(f"--images {path}: not a ZIP file; give the stimulus set's .zip of images") from None
        names = [n for n in self.zip.namelist() if not n.endswith("/")]
        self.exact = set(names)
        self.by_base: dict[str, str] = {}
        for n in names:
            self.by_base.setdefault(PurePosixPath(n).name, n)

    def read(self, filename: str) -> bytes | None:
        member = filename if filename in self.exact else self.by_base.get(PurePosixPath(filename).name)
        return None if member is None else self.zip.read(member)

    def close(self) -> None:
        self.zip.close()


# ---------------------------------------------------------------------------- the assembly
def open_assembly(path: Path):
    """(dataset, data variable name) of a BrainIO NetCDF file, lazily opened (nothing big is read)."""
    import xarray as xr

    if not path.is_file():
        raise UserError(f"--assembly {path}: file not found")
    try:
        ds = xr.open_dataset(path, engine="h5netcdf", cache=False, decode_timedelta=False)
    except Exception as exc:
        raise UserError(f"--assembly {path}: cannot be read as a NetCDF-4 (HDF5) assembly ({exc})") from None
    names = list(ds.data_vars)
    if len(names) != 1:
        preferred = [n for n in DATA_NAMES if n in names]
        if not names or not preferred:
            ds.close()
            raise UserError(
                f"--assembly {path}: expected exactly one data variable (`data`, "
                f"`__xarray_dataarray_variable__` or the array's name), found "
                f"{', '.join(names) or 'none'}"
            )
        names = preferred[:1]
    return ds, names[0]


def _coord(ds, name: str) -> np.ndarray | None:
    if name not in ds.variables:
        return None
    values = ds[name].values
    if values.dtype.kind in "SO":
        values = np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in values], dtype=object)
    return values


def _dim_coords(ds, dim: str, exclude: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Every 1-D coordinate on `dim` (the flattened MultiIndex levels)."""
    out = {}
    for name, var in ds.variables.items():
        if var.dims == (dim,) and name != dim and name not in exclude:
            out[name] = _coord(ds, name)
    return out


def _slots(stim_index: np.ndarray, repetition: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Per presentation its repetition slot (0.. within its stimulus), and per stimulus its count.

    Slots follow the `repetition` value, then file order, so 1-based, gappy or repeated numbering works.
    """
    n_stim = int(stim_index.max()) + 1 if stim_index.size and stim_index.max() >= 0 else 0
    kept = np.flatnonzero(stim_index >= 0)
    rep = repetition[kept].astype(np.float64) if repetition is not None else np.zeros(kept.size)
    order = kept[np.lexsort((kept, rep, stim_index[kept]))]
    stim_sorted = stim_index[order]
    starts = np.r_[0, np.flatnonzero(np.diff(stim_sorted)) + 1] if order.size else np.zeros(0, dtype=np.int64)
    lengths = np.diff(np.r_[starts, order.size])
    slot = np.full(stim_index.shape, -1, dtype=np.int64)
    slot[order] = np.arange(order.size) - np.repeat(starts, lengths)
    counts = np.bincount(stim_index[kept], minlength=n_stim)
    return slot, counts, int(counts.max()) if counts.size else 0


@dataclass
class Assembly:
    """What `read_assembly` returns: the selected trials of an assembly and their coordinates.

    trials: float32 (sites, stimuli, max repetitions), NaN past each stimulus' count
    counts: repetitions per stimulus; stimulus_ids / sites: the kept stimuli (in the given order)
    and the kept neuroids' coordinates (one column per coordinate, `neuroid_id` included)
    """

    stimulus_ids: np.ndarray
    sites: pd.DataFrame
    trials: np.ndarray
    counts: np.ndarray
    id_name: str
    attrs: dict

    @property
    def responses(self) -> np.ndarray:
        """Trial-averaged responses (float64, sites x stimuli)."""
        return mean_over_trials(self.trials, self.counts)


def read_assembly(
    path: str | Path,
    *,
    stimulus_ids: Sequence[str] | None = None,
    selection: Selection = Selection(),
    report: Report | None = None,
    chunk_presentations: int = CHUNK_PRESENTATIONS,
) -> Assembly:
    """Stream the selected trials of a BrainIO assembly (stimuli in `stimulus_ids` order, else first seen)."""
    path = Path(path)
    ds, var_name = open_assembly(path)
    try:
        return _read(
            ds, var_name, path, stimulus_ids, selection, report if report is not None else Report(), chunk_presentations
        )
    finally:
        ds.close()


def _read(ds, var_name, assembly, stimulus_ids, selection, report, chunk_presentations) -> Assembly:
    var = ds[var_name]
    dims = tuple(var.dims)
    unexpected = [d for d in dims if d not in ("presentation", "neuroid", "time_bin")]
    if "presentation" not in dims or "neuroid" not in dims or unexpected:
        raise UserError(
            f"--assembly {assembly}: data variable `{var_name}` has dims ({', '.join(dims)}); a neural "
            "assembly needs `presentation` and `neuroid` (and optionally `time_bin`) - "
            "spike-time or metadata assemblies cannot be imported"
        )

    # presentations: which stimulus each trial showed, and its repetition
    p_id_name, p_ids = _presentation_ids(ds, assembly, report)
    repetition = _coord(ds, "repetition")
    if repetition is not None:
        repetition = pd.to_numeric(pd.Series(repetition), errors="coerce").to_numpy()
    stim_ids = np.asarray(pd.unique(p_ids) if stimulus_ids is None else list(stimulus_ids), dtype=object).astype(str)
    stim_index = pd.Index(stim_ids).get_indexer(p_ids).astype(np.int64)
    slot, counts, max_reps = _slots(stim_index, repetition)
    counts = np.bincount(stim_index[stim_index >= 0], minlength=len(stim_ids))

    # sites
    n_ids = _coord(ds, "neuroid_id")
    if n_ids is None:
        raise UserError(f"--assembly {assembly}: no `neuroid_id` coordinate on `neuroid`")
    site_frame = pd.DataFrame(_dim_coords(ds, "neuroid", exclude=()))
    site_frame["neuroid_id"] = n_ids.astype(str)
    keep_sites = site_mask(
        site_frame["neuroid_id"].tolist(),
        selection,
        {k: site_frame[k].tolist() for k in ("region", "animal") if k in site_frame.columns},
    )
    site_rows = np.flatnonzero(keep_sites)
    site_frame = site_frame.iloc[site_rows].reset_index(drop=True)

    tb_sel = _time_bins(ds, var, selection, assembly)

    # stream the data into (sites, stimuli, repetitions) trials, one chunk of presentations at a time
    n_sites, n_stim = len(site_rows), len(stim_ids)
    trials = np.full((n_sites, n_stim, max(max_reps, 1)), np.nan, dtype=np.float32)
    n_pres = var.sizes["presentation"]
    all_sites = n_sites == var.sizes["neuroid"]
    log.info(
        "reading %s: %d sites x %d presentations -> %d sites x %d stimuli x %d repetitions",
        assembly.name,
        var.sizes["neuroid"],
        n_pres,
        n_sites,
        n_stim,
        max_reps,
    )
    order = ("neuroid", "presentation") + (("time_bin",) if "time_bin" in dims else ())
    for a in range(0, n_pres, chunk_presentations):
        b = min(a + chunk_presentations, n_pres)
        sel = np.flatnonzero(stim_index[a:b] >= 0)
        if sel.size == 0:
            continue
        indexer = {"presentation": slice(a, b)}
        if tb_sel is not None:
            indexer["time_bin"] = tb_sel
        values = np.asarray(var.isel(indexer).transpose(*order).values)
        if values.ndim == 3:
            values = values.mean(axis=2, dtype=np.float64) if values.shape[2] > 1 else values[:, :, 0]
        if not all_sites:
            values = values[site_rows]
        trials[:, stim_index[a + sel], slot[a + sel]] = values[:, sel]
    return Assembly(
        stimulus_ids=stim_ids,
        sites=site_frame,
        trials=trials,
        counts=counts,
        id_name=p_id_name,
        attrs={**var.attrs, **ds.attrs},
    )


def _presentation_ids(ds, assembly, report) -> tuple[str, np.ndarray]:
    """The presentation coordinate naming each trial's stimulus (stimulus_id, else image_id) and its values."""
    p_id_name = "stimulus_id" if "stimulus_id" in ds.variables else "image_id" if "image_id" in ds.variables else None
    if p_id_name is None:
        raise UserError(f"--assembly {assembly}: no `stimulus_id` or `image_id` coordinate on `presentation`")
    p_ids = _coord(ds, p_id_name).astype(str)
    if p_id_name == "stimulus_id" and "image_id" in ds.variables:
        other = _coord(ds, "image_id").astype(str)
        if (other != p_ids).any():
            report.add(
                str(assembly),
                "stimulus_id/image_id",
                "presentation coordinates stimulus_id and image_id differ",
                "keep one, or make them equal",
                sorted(set(p_ids[other != p_ids])),
            )
    return p_id_name, p_ids


def _time_bins(ds, var, selection, assembly) -> slice | np.ndarray | None:
    """Which time bins to average (None: the assembly has no time_bin dimension); UserError when several bins
    exist and --time-bin does not choose, or --time-bin is given for an assembly without bins."""
    dims = tuple(var.dims)
    tb_sel: slice | np.ndarray | None = None
    if "time_bin" in dims:
        starts = _coord(ds, "time_bin_start")
        ends = _coord(ds, "time_bin_end")
        if ends is None:
            ends = _coord(ds, "time_bin_stop")
        n_bins = var.sizes["time_bin"]
        idx = time_bin_indices(starts, ends, selection, source=str(assembly))
        if idx is None:
            if n_bins > 1:
                bins = ", ".join(f"{s}-{e}" for s, e in zip(starts, ends, strict=True)) if starts is not None else ""
                raise UserError(
                    f"--assembly {assembly}: {n_bins} time bins ({bins}); choose the window to "
                    "average with --time-bin START-END (ms), e.g. --time-bin 70-170"
                )
            idx = np.arange(n_bins)
        tb_sel = slice(int(idx[0]), int(idx[-1]) + 1) if np.array_equal(idx, np.arange(idx[0], idx[-1] + 1)) else idx
    elif selection.time_bin is not None and not selection.preset:
        raise UserError(f"--time-bin: {assembly} has no time_bin dimension; leave out --time-bin")
    return tb_sel


def import_brainio(
    assembly: str | Path,
    stimuli: str | Path,
    images: str | Path,
    selection: Selection = Selection(),
    *,
    drop_bad_sites: bool = False,
    chunk_presentations: int = CHUNK_PRESENTATIONS,
) -> DatasetTables:
    """Read a BrainIO assembly + stimulus CSV + image ZIP; refuse (UserError) with every problem found."""
    assembly, stimuli_path, images_path = Path(assembly), Path(stimuli), Path(images)
    report = Report()
    csv, id_col, file_col = read_stimulus_csv(report, stimuli_path)
    zip_images = ZipImages(images_path)
    try:
        ds, _ = open_assembly(assembly)
        try:
            # which stimuli the assembly shows (a cheap read of one coordinate)
            p_id_name = "stimulus_id" if "stimulus_id" in ds.variables else "image_id"
            used_ids = pd.unique(_coord(ds, p_id_name).astype(str)) if p_id_name in ds.variables else []
        finally:
            ds.close()
        csv = _select_stimuli(report, csv, id_col, used_ids, assembly, stimuli_path, selection)
        stim_ids = csv[id_col].astype(str).to_numpy()
        data = read_assembly(
            assembly, stimulus_ids=stim_ids, selection=selection, report=report, chunk_presentations=chunk_presentations
        )
        images_, widths, heights = _read_images(report, zip_images, stim_ids, csv, file_col, images_path)
    finally:
        zip_images.close()

    used = ["image_id"] if id_col == "stimulus_id" and "image_id" in csv.columns else []
    stim_frame = normalise_stimuli(csv, id_column=id_col, used=used)
    stim_frame["width"], stim_frame["height"] = widths, heights
    site_frame = data.sites
    if "region" not in site_frame.columns:
        site_frame = site_frame.assign(region=None)
    sites = normalise_sites(site_frame, id_column="neuroid_id")

    identifier = data.attrs.get("identifier") or assembly.stem
    stimulus_set = data.attrs.get("stimulus_set_identifier") or stimuli_path.stem
    info = {
        "source": "brainio",
        "title": str(identifier),
        "description": f"BrainIO assembly {identifier} with stimulus set {stimulus_set}; selection: "
        f"{selection.describe()}",
        "n_repetitions": int(np.median(data.counts)) if data.counts.size else None,
        "input_hash": input_hash([assembly, stimuli_path, images_path]),
    }
    return finish(
        report=report,
        info=info,
        stimuli=stim_frame,
        images=images_,
        sites=sites,
        responses=data.responses,
        trials=data.trials,
        files={"stimuli": str(stimuli_path), "sites": str(assembly), "responses": str(assembly)},
        fields={"stimulus_id": id_col, "site_id": "neuroid_id"},
        drop_bad_sites=drop_bad_sites,
    )


def _select_stimuli(report, csv, id_col, used_ids, assembly, stimuli_path, selection) -> pd.DataFrame:
    """CSV rows of the stimuli the assembly shows, in CSV order, after the variation selection."""
    dup = duplicates(csv[id_col])
    if dup:
        report.add(str(stimuli_path), id_col, "duplicate stimulus ids", "give every stimulus one row", dup)
        csv = csv.drop_duplicates(id_col, keep="first")
    csv = csv.reset_index(drop=True)
    csv_ids = csv[id_col].astype(str)
    unknown = sorted(set(used_ids) - set(csv_ids))
    if unknown:
        report.add(
            str(assembly),
            "stimulus_id",
            f"presentations of stimuli that are not in {stimuli_path.name}",
            "give the stimulus set that belongs to this assembly (--stimuli)",
            unknown,
        )
    csv = csv[csv_ids.isin(set(used_ids)).to_numpy()].reset_index(drop=True)
    smask = stimulus_mask(
        csv["variation"].tolist() if "variation" in csv.columns else None,
        selection,
        source=f"{assembly.name} (its stimuli in {stimuli_path.name})",
        hint="(The public MajajHong2015 assembly holds only variations 0 and 3: the seed paper's "
        "set, variation 6, needs the full or private one.)",
    )
    if smask is not None:
        csv = csv[smask].reset_index(drop=True)
    return csv


def _read_images(report, zip_images, stim_ids, csv, file_col, images_path):
    images, widths, heights, missing, unreadable = [], [], [], [], []
    filenames = csv[file_col].tolist() if file_col else [None] * len(stim_ids)
    for sid, fname in zip(stim_ids, filenames, strict=True):
        data = zip_images.read(str(fname)) if isinstance(fname, str) and fname else None
        png, w, h = b"", None, None
        if data is None:
            missing.append(sid)
        else:
            try:
                png, w, h = encode_png(data)
            except ValueError:
                unreadable.append(f"{sid} ({fname})")
        images.append(png), widths.append(w), heights.append(h)
    if missing and file_col:
        report.add(
            str(images_path),
            file_col,
            f"stimuli whose image file is not in {images_path.name}",
            "give the stimulus set's own ZIP (--images), or correct the file names in the CSV",
            missing,
        )
    if unreadable:
        report.add(
            str(images_path),
            file_col or "filename",
            "image files that cannot be read",
            "replace them with readable PNG/JPEG/TIFF files",
            unreadable,
        )
    return images, widths, heights
