"""Pieces every importer shares: images to PNG, metadata columns to the schema, and the final assembly.

Each importer reads its format into plain frames and arrays, then `finish` checks the data (collecting
every problem, see validation.py), drops what `--drop-bad-sites` allows, computes reliability from the
trials and returns the DatasetTables the writer stores.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from backend import schema
from precompute.core.files import sha256_file
from precompute.datasets.importers.selection import variation_level
from precompute.datasets.importers.validation import Report, check_data
from precompute.datasets.reliability import split_half_reliability
from precompute.datasets.tables import DatasetTables

log = logging.getLogger(__name__)

STIMULUS_COLUMNS = schema.TABLES_BY_NAME["stimuli"].column_names[1:]
SITE_COLUMNS = schema.TABLES_BY_NAME["sites"].column_names[1:]

#: stimulus metadata names in the formats -> schema column (first match wins)
STIMULUS_ALIASES: dict[str, tuple[str, ...]] = {
    "category": ("category", "category_name"),
    "object": ("object", "object_name"),
    "variation": ("variation", "variation_level"),
    "ty": ("ty", "translation_y"),
    "tz": ("tz", "translation_z"),
    "s": ("s",),
    "rxy": ("rxy", "rotation_xy"),
    "rxz": ("rxz", "rotation_xz"),
    "ryz": ("ryz", "rotation_yz"),
    "background_id": ("background_id",),
    "filename": ("filename", "image_file_name"),
}
SITE_ALIASES: dict[str, tuple[str, ...]] = {
    "region": ("region",),
    "subregion": ("subregion",),
    "animal": ("animal",),
    "electrode_array": ("electrode_array", "array", "arr"),
    "reliability": ("reliability",),
    "rf_x_deg": ("rf_x_deg",),
    "rf_y_deg": ("rf_y_deg",),
    "rf_size_deg": ("rf_size_deg",),
}
_NUMERIC_STIMULUS = ("ty", "tz", "s", "rxy", "rxz", "ryz")
_NUMERIC_SITE = ("reliability", "rf_x_deg", "rf_y_deg", "rf_size_deg")


# ---------------------------------------------------------------------------- images
def encode_png(data: bytes | np.ndarray) -> tuple[bytes, int, int]:
    """Re-encode an image file's bytes (or a 2-D/3-D pixel array) as 8-bit grayscale or RGB PNG.

    8-bit grayscale and RGB inputs are kept exactly (PNG is lossless); palette, alpha, 1-bit and CMYK
    images become RGB or grayscale; 16-bit and float images are scaled to 8 bits. Raises ValueError
    when the bytes are not an image Pillow can read.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(data, np.ndarray):
        img = Image.fromarray(_to_uint8(data))
    else:
        try:
            img = Image.open(io.BytesIO(data))
            img.load()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise ValueError(f"not a readable image ({exc})") from None
    img = _to_l_or_rgb(img)
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=6)
    return out.getvalue(), img.width, img.height


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    x = pixels.astype(np.float64)
    if np.issubdtype(pixels.dtype, np.floating) and np.nanmax(x) <= 1.0 and np.nanmin(x) >= 0.0:
        x = x * 255.0  # [0, 1] floats
    elif np.issubdtype(pixels.dtype, np.integer) and pixels.dtype.itemsize > 1:
        x = x / np.iinfo(pixels.dtype).max * 255.0 if x.max() > 255 else x
    return np.clip(np.rint(np.nan_to_num(x)), 0, 255).astype(np.uint8)


def _to_l_or_rgb(img):
    from PIL import Image

    if img.mode in ("L", "RGB"):
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(img)))
    if img.mode in ("1", "LA"):
        return img.convert("L")
    if img.mode == "P":
        rgb = img.convert("RGB")
        arr = np.asarray(rgb)
        gray = (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
        return Image.fromarray(arr[..., 0]) if gray else rgb
    return img.convert("RGB")


# ---------------------------------------------------------------------------- metadata columns
def _json_value(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def extra_json(frame: pd.DataFrame, columns: Sequence[str]) -> list[str | None]:
    """One JSON object per row holding `columns` (None for rows when there are no such columns)."""
    if not columns:
        return [None] * len(frame)
    values = {c: frame[c].tolist() for c in columns}
    return [json.dumps({c: _json_value(values[c][i]) for c in columns}) for i in range(len(frame))]


def _pick(frame: pd.DataFrame, aliases: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """schema column -> the frame's column that supplies it."""
    out = {}
    for target, names in aliases.items():
        for name in names:
            if name in frame.columns:
                out[target] = name
                break
    return out


def normalise_stimuli(frame: pd.DataFrame, *, id_column: str, used: Sequence[str] = ()) -> pd.DataFrame:
    """Metadata rows -> `stimuli` columns (without idx/width/height); unmapped columns go to `extra`.

    `used` names input columns consumed elsewhere that must not be repeated in extra (e.g. a second
    id column equal to the first).
    """
    return _normalise(
        frame,
        id_column,
        used,
        "stimulus_id",
        STIMULUS_COLUMNS,
        STIMULUS_ALIASES,
        ("idx", "width", "height"),
        _NUMERIC_STIMULUS,
    )


def normalise_sites(frame: pd.DataFrame, *, id_column: str, used: Sequence[str] = ()) -> pd.DataFrame:
    """Site rows -> `sites` columns (without idx); unmapped columns go to `extra`."""
    return _normalise(frame, id_column, used, "site_id", SITE_COLUMNS, SITE_ALIASES, ("idx",), _NUMERIC_SITE)


def _normalise(
    frame: pd.DataFrame,
    id_column: str,
    used: Sequence[str],
    id_target: str,
    columns: Sequence[str],
    aliases,
    skip: tuple[str, ...],
    numeric,
) -> pd.DataFrame:
    """Input rows -> a table's columns: each found by its aliases (None where the input has none), numbers
    as float, `variation` as its level, the rest as text; columns nothing consumed go to `extra` (JSON)."""
    mapping = _pick(frame, aliases)
    out = pd.DataFrame({id_target: frame[id_column].astype(str).to_numpy()})
    for target in columns:
        if target in (id_target, "extra", *skip):
            continue
        src = mapping.get(target)
        if src is None:
            out[target] = None
        elif target == "variation":
            out[target] = pd.array([variation_level(v) for v in frame[src]], dtype="Int64")
        elif target in numeric:
            out[target] = pd.to_numeric(frame[src], errors="coerce").astype(float).to_numpy()
        else:
            out[target] = [None if _missing(v) else _text(v) for v in frame[src]]
    consumed = {id_column, *used, *mapping.values()}
    rest = [c for c in frame.columns if c not in consumed]
    out["extra"] = extra_json(frame.reset_index(drop=True), rest)
    return out


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------- trials
def mean_over_trials(trials: np.ndarray, counts: np.ndarray | None = None, chunk: int = 64) -> np.ndarray:
    """Trial-averaged responses (float64) from trials (sites, stimuli, reps).

    With `counts` (repetitions present per stimulus, shared by all sites), slots past the count are
    padding and the mean is over the first `counts[j]` slots, so a NaN in a real trial stays NaN (and is
    refused by validation). Without it, NaN slots are treated as missing repetitions.
    """
    n_sites, n_stim, n_rep = trials.shape
    out = np.empty((n_sites, n_stim))
    for a in range(0, n_sites, chunk):
        block = trials[a : a + chunk].astype(np.float64)
        if counts is None:
            valid = ~np.isnan(block)
            n = valid.sum(axis=2)
            total = np.where(valid, block, 0.0).sum(axis=2)
        else:
            slot_ok = np.arange(n_rep)[None, :] < counts[:, None]  # (stimuli, reps)
            total = np.where(slot_ok[None], block, 0.0).sum(axis=2)
            n = np.broadcast_to(counts[None, :], total.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[a : a + chunk] = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return out


def reliability_of(trials: np.ndarray | None, chunk: int = 32) -> np.ndarray | None:
    """Split-half reliability per site (DESIGN.md), in chunks of sites to bound memory.

    The permutations depend only on the seed and the number of repetitions, so chunking gives the same
    values as one call over all sites.
    """
    if trials is None or trials.shape[2] < 2:
        return None
    parts = [split_half_reliability(trials[a : a + chunk]) for a in range(0, trials.shape[0], chunk)]
    return np.concatenate(parts) if parts else np.empty(0)


# ---------------------------------------------------------------------------- assembly
def finish(
    *,
    report: Report,
    info: dict,
    stimuli: pd.DataFrame,
    images: list[bytes],
    sites: pd.DataFrame,
    responses: np.ndarray,
    trials: np.ndarray | None,
    files: Mapping[str, str],
    fields: Mapping[str, str] | None = None,
    drop_bad_sites: bool = False,
) -> DatasetTables:
    """Check the selected data, refuse with every problem found, else return the DatasetTables.

    `files`/`fields` name where stimuli, sites and responses came from, for the problem report.
    """
    fields = dict(fields or {})
    checked = check_data(
        report,
        stimulus_ids=stimuli["stimulus_id"].tolist(),
        site_ids=sites["site_id"].tolist(),
        regions=sites["region"].tolist(),
        responses=responses,
        stimuli_file=files["stimuli"],
        stimulus_field=fields.get("stimulus_id", "stimulus_id"),
        sites_file=files["sites"],
        site_field=fields.get("site_id", "site_id"),
        responses_file=files["responses"],
        region_field=fields.get("region", "region"),
        drop_bad_sites=drop_bad_sites,
    )
    report.raise_if_any()
    keep = checked.keep_sites
    if not keep.all():
        sites = sites[keep].reset_index(drop=True)
        responses = responses[keep]
        trials = trials[keep] if trials is not None else None
    if len(sites) == 0:
        report.add(
            files["responses"],
            "response",
            "no site is left after selection and dropping bad sites",
            "check --region/--exclude-sites, or fix the responses",
        )
        report.raise_if_any()

    stimuli = stimuli.reset_index(drop=True).copy()
    stimuli["idx"] = np.arange(len(stimuli), dtype=np.int64)
    sites = sites.reset_index(drop=True).copy()
    sites["idx"] = np.arange(len(sites), dtype=np.int64)
    rel = reliability_of(trials)
    if rel is not None:
        sites["reliability"] = rel
    elif "reliability" not in sites.columns:
        sites["reliability"] = np.nan
    for col in SITE_COLUMNS:
        if col not in sites.columns:
            sites[col] = None
    for col in STIMULUS_COLUMNS:
        if col not in stimuli.columns:
            stimuli[col] = None

    info = dict(info)
    info.setdefault("synthetic", False)
    info.setdefault("visual_degrees", 8.0)
    if trials is not None:
        info.setdefault("n_repetitions", int(np.median((~np.isnan(trials[0])).sum(axis=1))) if len(trials) else None)
    extra = {"dropped_sites": checked.dropped} if checked.dropped else {}
    return DatasetTables(
        info=info,
        stimuli=stimuli[list(STIMULUS_COLUMNS)],
        images=list(images),
        sites=sites[list(SITE_COLUMNS)],
        responses=np.ascontiguousarray(responses, dtype=np.float32),
        trials=None if trials is None else np.asarray(trials, dtype=np.float32),
        extra=extra,
    )


def input_hash(paths: Sequence[object]) -> str:
    """sha256 over the inputs' own sha256 (files) or sorted file list (folders)."""

    h = hashlib.sha256()
    for p in paths:
        path = Path(str(p))
        if path.is_dir():
            for f in sorted(x for x in path.rglob("*") if x.is_file()):
                h.update(str(f.relative_to(path)).encode())
                h.update(sha256_file(f).encode())
        elif path.is_file():
            h.update(sha256_file(path).encode())
    return h.hexdigest()
