"""Import a plain folder, what a lab exports from its own pipeline (FORMATS.md, section 3).

    DIR/stimuli.csv     stimulus_id, filename (relative to DIR), optional category, object, variation, ...
    DIR/sites.csv       site_id, region, optional animal, reliability, rf_x_deg, rf_y_deg, rf_size_deg, ...
    DIR/responses.csv   site_id, stimulus_id, response               (trial-averaged), or
    DIR/trials.csv      site_id, stimulus_id, repetition, response   (per trial; averaged here), or
    DIR/responses.npy   float array (n_sites, n_stimuli) in the row order of sites.csv and stimuli.csv
    DIR/dataset.json    optional: title, visual_degrees (default 8), description

Images may be PNG, JPEG or TIFF, grayscale or RGB, any size; they are stored as PNG.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.core.errors import UserError
from precompute.datasets.importers.common import encode_png, finish, input_hash, normalise_sites, normalise_stimuli
from precompute.datasets.importers.selection import Selection, site_mask, stimulus_mask
from precompute.datasets.importers.validation import Report, duplicates
from precompute.datasets.tables import DatasetTables

log = logging.getLogger(__name__)

RESPONSE_FILES = ("responses.csv", "trials.csv", "responses.npy")


def read_csv(path: Path, id_columns: tuple[str, ...]) -> pd.DataFrame:
    """A CSV with its id columns read as text (ids like 007 stay 007)."""
    try:
        return pd.read_csv(path, dtype={c: str for c in id_columns}, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as a CSV with a header row ({exc})") from None


def _require_columns(report: Report, frame: pd.DataFrame, path: Path, columns: tuple[str, ...], fix: str) -> bool:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns))
        report.add(str(path), ", ".join(missing), f"missing column(s); the file has {have}", fix)
    return not missing


def _dedupe(report: Report, frame: pd.DataFrame, column: str, path: Path, what: str) -> pd.DataFrame:
    dup = duplicates(frame[column])
    if dup:
        report.add(str(path), column, f"duplicate {what} ids", f"give every {what} one row with a unique id", dup)
        frame = frame.drop_duplicates(column, keep="first")
    return frame.reset_index(drop=True)


def import_folder(
    path: str | Path, selection: Selection = Selection(), *, drop_bad_sites: bool = False
) -> DatasetTables:
    """Read a folder in the layout above; refuse (UserError) with every problem found."""
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"--path {root}: not a folder; point it at the folder holding stimuli.csv and sites.csv")
    report = Report()
    responses_path = _response_file(report, root)
    info = _read_info(report, root)

    stim_path, sites_path = root / "stimuli.csv", root / "sites.csv"
    stim = read_csv(stim_path, ("stimulus_id", "filename"))
    sites_raw = read_csv(sites_path, ("site_id",))
    ok = _require_columns(
        report,
        stim,
        stim_path,
        ("stimulus_id", "filename"),
        "add a stimulus_id column and a filename column (the image's path relative to the folder)",
    )
    ok &= _require_columns(
        report, sites_raw, sites_path, ("site_id", "region"), "add a site_id column and a region column (V4, IT, ...)"
    )
    if not ok:
        report.raise_if_any()
    # row order of the files as given (responses.npy refers to it), before removing duplicate rows
    all_stim_ids = stim["stimulus_id"].astype(str).tolist()
    all_site_ids = sites_raw["site_id"].astype(str).tolist()
    stim = _dedupe(report, stim, "stimulus_id", stim_path, "stimulus")
    sites_raw = _dedupe(report, sites_raw, "site_id", sites_path, "site")

    # selection
    smask = stimulus_mask(
        stim["variation"].tolist() if "variation" in stim.columns else None, selection, source=str(stim_path)
    )
    if smask is not None:
        stim = stim[smask].reset_index(drop=True)
    coords = {c: sites_raw[c].tolist() for c in ("region", "animal") if c in sites_raw.columns}
    sites_raw = sites_raw[site_mask(sites_raw["site_id"], selection, coords)].reset_index(drop=True)
    if selection.time_bin is not None and not selection.preset:
        raise UserError("--time-bin: a folder's responses have no time bins; leave out --time-bin")

    stim_ids = stim["stimulus_id"].astype(str).tolist()
    site_ids = sites_raw["site_id"].astype(str).tolist()
    responses, trials = _read_responses(report, responses_path, all_stim_ids, all_site_ids, stim_ids, site_ids)

    images, widths, heights = _read_images(report, root, stim_path, stim_ids, stim["filename"].tolist())

    stimuli = normalise_stimuli(stim, id_column="stimulus_id")
    stimuli["width"], stimuli["height"] = widths, heights
    sites = normalise_sites(sites_raw, id_column="site_id")
    info["input_hash"] = input_hash([root])
    return finish(
        report=report,
        info=info,
        stimuli=stimuli,
        images=images,
        sites=sites,
        responses=responses,
        trials=trials,
        files={"stimuli": str(stim_path), "sites": str(sites_path), "responses": str(responses_path)},
        drop_bad_sites=drop_bad_sites,
    )


def _response_file(report: Report, root: Path) -> Path:
    """The folder's one response file; every problem of its layout (missing files) reported together."""
    for name in ("stimuli.csv", "sites.csv"):
        if not (root / name).is_file():
            report.add(str(root / name), "", "file not found", f"export {name} into {root} (see docs/FORMATS.md)")
    present = [n for n in RESPONSE_FILES if (root / n).is_file()]
    if not present:
        report.add(
            str(root),
            "",
            "no responses: expected one of " + ", ".join(RESPONSE_FILES),
            "export the trial-averaged responses (responses.csv or responses.npy) or the trials (trials.csv)",
        )
    elif len(present) > 1:
        report.add(
            str(root),
            "",
            "more than one response file: " + ", ".join(present),
            "keep exactly one of " + ", ".join(RESPONSE_FILES),
        )
    report.raise_if_any()
    return root / present[0]


def _read_info(report: Report, root: Path) -> dict:
    """The dataset's info: the folder's name, overridden by an optional dataset.json."""
    info = {"source": "folder", "title": root.name, "description": f"imported from folder {root}"}
    meta_path = root / "dataset.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
            for key in ("title", "description"):
                if key in meta:
                    info[key] = str(meta[key])
            if "visual_degrees" in meta:
                info["visual_degrees"] = float(meta["visual_degrees"])
        except (ValueError, TypeError) as exc:
            report.add(
                str(meta_path),
                "",
                f"not valid ({exc})",
                'write a JSON object like {"title": "...", "visual_degrees": 8, "description": "..."}',
            )
    return info


def _read_images(
    report: Report, root: Path, stim_path: Path, stim_ids: list[str], filenames: list
) -> tuple[list[bytes], list[int | None], list[int | None]]:
    """Each stimulus's image as PNG bytes with its size; missing and unreadable files are reported."""
    images, widths, heights = [], [], []
    missing, unreadable = [], []
    for sid, fname in zip(stim_ids, filenames, strict=True):
        file = root / str(fname) if isinstance(fname, str) and fname else None
        if file is None or not file.is_file():
            missing.append(sid)
            images.append(b""), widths.append(None), heights.append(None)
            continue
        try:
            png, w, h = encode_png(file.read_bytes())
        except ValueError:
            unreadable.append(f"{sid} ({fname})")
            images.append(b""), widths.append(None), heights.append(None)
            continue
        images.append(png), widths.append(w), heights.append(h)
    if missing:
        report.add(
            str(stim_path),
            "filename",
            f"no image file in {root} for these stimuli",
            "put the image files in the folder, or correct their filename (relative to the folder)",
            missing,
        )
    if unreadable:
        report.add(
            str(stim_path),
            "filename",
            "image files that cannot be read as PNG, JPEG or TIFF",
            "replace them with readable images",
            unreadable,
        )
    return images, widths, heights


def _read_npy_responses(
    report: Report, path: Path, all_stim: list[str], all_sites: list[str], stim_ids: list[str], site_ids: list[str]
) -> np.ndarray:
    """responses.npy: a (sites x stimuli) array in the row order of sites.csv and stimuli.csv."""
    n_sites, n_stim = len(site_ids), len(stim_ids)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        report.add(str(path), "", f"cannot be read as a NumPy array ({exc})", "save it with numpy.save")
        return np.full((n_sites, n_stim), np.nan)
    if arr.shape != (len(all_sites), len(all_stim)) or not np.issubdtype(arr.dtype, np.number):
        report.add(
            str(path),
            "shape",
            f"is {arr.dtype} {arr.shape}; expected numbers shaped "
            f"(sites {len(all_sites)}, stimuli {len(all_stim)}) in the row order of sites.csv and "
            "stimuli.csv",
            "save the responses as a (sites x stimuli) float array",
        )
        return np.full((n_sites, n_stim), np.nan)
    first_site = {s: i for i, s in reversed(list(enumerate(all_sites)))}
    first_stim = {s: i for i, s in reversed(list(enumerate(all_stim)))}
    rows = [first_site[s] for s in site_ids]
    cols = [first_stim[s] for s in stim_ids]
    return arr[np.ix_(rows, cols)].astype(np.float64)


def _check_response_rows(
    report: Report, frame: pd.DataFrame, path: Path, all_stim: list[str], all_sites: list[str], key: list[str]
) -> pd.DataFrame:
    """Report rows of unknown stimuli or sites and duplicate keys; the frame with the first of each duplicate."""
    unknown_stim = sorted(set(frame["stimulus_id"].astype(str)) - set(all_stim))
    unknown_site = sorted(set(frame["site_id"].astype(str)) - set(all_sites))
    if unknown_stim:
        report.add(
            str(path),
            "stimulus_id",
            "responses for stimuli not in stimuli.csv",
            "add these stimuli to stimuli.csv or remove their rows",
            unknown_stim,
        )
    if unknown_site:
        report.add(
            str(path),
            "site_id",
            "responses for sites not in sites.csv",
            "add these sites to sites.csv or remove their rows",
            unknown_site,
        )
    dup = frame.duplicated(key, keep=False)
    if dup.any():
        pairs = frame.loc[dup, key].astype(str).agg("/".join, axis=1).drop_duplicates().tolist()
        report.add(
            str(path),
            "/".join(key),
            "more than one row for the same " + "/".join(key),
            "keep one row per " + "/".join(key),
            pairs,
        )
        frame = frame.drop_duplicates(key, keep="first")
    return frame


def _trials_from_rows(
    si: np.ndarray, ti: np.ndarray, values: np.ndarray, repetition: np.ndarray, n_sites: int, n_stim: int
) -> tuple[np.ndarray, np.ndarray]:
    """Trials (sites, stimuli, repetitions) and their mean responses from one row per trial; a trial's
    slot is the rank of its repetition within its (site, stimulus), so 1-based or gappy numbering works."""
    order = np.lexsort((repetition, ti, si))
    si, ti, values = si[order], ti[order], values[order]
    cell = si * n_stim + ti
    starts = np.r_[0, np.flatnonzero(np.diff(cell)) + 1]
    slot = np.arange(len(cell)) - np.repeat(starts, np.diff(np.r_[starts, len(cell)]))
    max_reps = int(slot.max()) + 1 if len(slot) else 1
    trials = np.full((n_sites, n_stim, max_reps), np.nan, dtype=np.float32)
    trials[si, ti, slot] = values
    sums = np.zeros(n_sites * n_stim)
    counts = np.zeros(n_sites * n_stim)
    np.add.at(sums, cell, values)  # NaN trials make the mean NaN: refused by validation
    np.add.at(counts, cell, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        responses = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan).reshape(n_sites, n_stim)
    return responses, trials


def _read_responses(
    report: Report, path: Path, all_stim: list[str], all_sites: list[str], stim_ids: list[str], site_ids: list[str]
) -> tuple[np.ndarray, np.ndarray | None]:
    """The (selected sites x selected stimuli) responses, and trials when the folder has them."""
    n_sites, n_stim = len(site_ids), len(stim_ids)
    if path.suffix == ".npy":
        return _read_npy_responses(report, path, all_stim, all_sites, stim_ids, site_ids), None

    per_trial = path.name == "trials.csv"
    need = ("site_id", "stimulus_id", "repetition", "response") if per_trial else ("site_id", "stimulus_id", "response")
    frame = read_csv(path, ("site_id", "stimulus_id"))
    if not _require_columns(
        report,
        frame,
        path,
        need,
        "write one row per " + ("trial" if per_trial else "site and stimulus") + " with columns " + ", ".join(need),
    ):
        return np.full((n_sites, n_stim), np.nan), None
    key = ["site_id", "stimulus_id"] + (["repetition"] if per_trial else [])
    frame = _check_response_rows(report, frame, path, all_stim, all_sites, key)
    site_pos = {s: i for i, s in enumerate(site_ids)}
    stim_pos = {s: i for i, s in enumerate(stim_ids)}
    si = frame["site_id"].astype(str).map(site_pos)
    ti = frame["stimulus_id"].astype(str).map(stim_pos)
    keep = si.notna() & ti.notna()
    frame = frame[keep]
    si = si[keep].to_numpy(dtype=np.int64)
    ti = ti[keep].to_numpy(dtype=np.int64)
    values = pd.to_numeric(frame["response"], errors="coerce").to_numpy(dtype=np.float64)
    if not per_trial:
        out = np.full((n_sites, n_stim), np.nan)
        out[si, ti] = values
        return out, None
    repetition = pd.to_numeric(frame["repetition"], errors="coerce").to_numpy()
    return _trials_from_rows(si, ti, values, repetition, n_sites, n_stim)
