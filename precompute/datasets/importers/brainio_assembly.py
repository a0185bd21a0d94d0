"""Read a BrainIO / Brain-Score neural assembly (FORMATS.md, section 1), for brainio.py's import_brainio.

An assembly is one NetCDF-4 file holding one data variable (`data`, `__xarray_dataarray_variable__` or
the array's own name) with dims `presentation` and `neuroid` (optionally `time_bin`) in any order; each
level of the former MultiIndexes is a plain 1-D coordinate on its dimension. A presentation is one
trial: its stimulus (`stimulus_id` or `image_id`) and `repetition`.

The data are read in chunks of presentations straight into a (sites, stimuli, repetitions) trial array
of the selected sites and stimuli, so only the selection is ever held (the full MajajHong2015 file is
296 x 268,800 float32); trial averages and reliability are computed from that array.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.core.errors import UserError
from precompute.datasets.importers.common import mean_over_trials
from precompute.datasets.importers.selection import Selection, site_mask, time_bin_indices
from precompute.datasets.importers.validation import Report

log = logging.getLogger(__name__)

DATA_NAMES = ("data", "__xarray_dataarray_variable__")
#: presentations read per chunk (x sites x time bins x 4 bytes: ~20 MB for 296 sites)
CHUNK_PRESENTATIONS = 16384


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


def presented_stimuli(path: Path) -> np.ndarray | list:
    """The stimulus ids the assembly's presentations show, first seen first (a cheap read of one coordinate)."""
    ds, _ = open_assembly(path)
    try:
        p_id_name = "stimulus_id" if "stimulus_id" in ds.variables else "image_id"
        return pd.unique(_coord(ds, p_id_name).astype(str)) if p_id_name in ds.variables else []
    finally:
        ds.close()


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
