"""Import a BrainIO / Brain-Score neural assembly with its stimulus set (FORMATS.md, section 1).

An assembly is one NetCDF-4 file holding one data variable (`data`, `__xarray_dataarray_variable__` or
the array's own name) with dims `presentation` and `neuroid` (optionally `time_bin`) in any order; each
level of the former MultiIndexes is a plain 1-D coordinate on its dimension. A presentation is one
trial: its stimulus (`stimulus_id` or `image_id`) and `repetition`. The stimulus set is a CSV (id in
`stimulus_id` or `image_id`, file name in `filename` or `image_file_name`) plus a flat ZIP of images.

brainio_assembly.py reads the assembly (streaming only the selected trials); this module reads the
stimulus set and assembles the dataset.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from precompute.core.errors import UserError
from precompute.datasets.importers.brainio_assembly import CHUNK_PRESENTATIONS, presented_stimuli, read_assembly
from precompute.datasets.importers.common import encode_png, finish, input_hash, normalise_sites, normalise_stimuli
from precompute.datasets.importers.selection import Selection, stimulus_mask
from precompute.datasets.importers.validation import Report, duplicates
from precompute.datasets.tables import DatasetTables


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
        used_ids = presented_stimuli(assembly)
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
