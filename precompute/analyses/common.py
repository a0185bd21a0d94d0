"""Helpers shared by the analyses: the region's best layer, replacing an analysis table's rows, opening a model.

The analysis tables (runnerups, featuremap_counts, rotations, decoding, confusions, receptive_fields) are
not among the tables `AnalysisContext` writes, so each analysis replaces its own rows of one (dataset,
model) here, inside the step's transaction, with the columns `backend/schema/` declares.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from backend import schema
from precompute.core.failpoints import failpoint
from precompute.core.feeds import PngFeed
from precompute.match.inputs import load_inputs
from precompute.models import registry
from precompute.models.sources import open_source

log = logging.getLogger(__name__)


def replace_rows(
    con, table: str, dataset: str, model: str, rows: pd.DataFrame, *, where: dict[str, object] | None = None
) -> int:
    """Delete `table`'s rows of (dataset, model) (and `where` column = value), then insert `rows`.

    Returns the number of rows inserted."""
    spec = schema.TABLES_BY_NAME[table]
    conditions = ["dataset = ?", "model = ?"]
    params: list = [dataset, model]
    for col, value in (where or {}).items():
        if col not in spec.column_names:
            raise ValueError(f"{table} has no column {col!r}")
        conditions.append(f'"{col}" = ?')
        params.append(value)
    _check_columns(table, rows)
    con.execute(f'DELETE FROM "{table}" WHERE ' + " AND ".join(conditions), params)
    return append_rows(con, table, dataset, model, rows)


def append_rows(con, table: str, dataset: str, model: str, rows: pd.DataFrame) -> int:
    """Insert `rows` (every column of the table except dataset and model; extra columns are an error:
    they would be silently dropped) for (dataset, model). Returns the number of rows inserted."""
    cols = _check_columns(table, rows)
    if rows.empty:
        return 0
    df = rows.loc[:, cols].copy()
    df.insert(0, "model", model)
    df.insert(0, "dataset", dataset)
    name = f"_analyses_{table}"
    con.register(name, df)
    try:
        quoted = ", ".join(f'"{c}"' for c in df.columns)
        con.execute(f'INSERT INTO "{table}" ({quoted}) SELECT {quoted} FROM "{name}"')
    finally:
        con.unregister(name)
    failpoint("analyze.rows_written")
    return len(df)


def _check_columns(table: str, rows: pd.DataFrame) -> list[str]:
    cols = [c for c in schema.TABLES_BY_NAME[table].column_names if c not in ("dataset", "model")]
    extra = sorted(set(rows.columns) - set(cols))
    missing = [c for c in cols if c not in rows.columns]
    if extra or missing:
        raise ValueError(f"rows for {table}: missing columns {missing}, unknown columns {extra}")
    return cols


def derived_seed(*keys: object) -> int:
    """A 63-bit integer seed from names and numbers (stored beside results so a draw can be repeated)."""
    parts = [zlib.crc32(str(k).encode()) for k in keys]
    return int(np.random.SeedSequence(parts).generate_state(2, np.uint64)[0] >> np.uint64(1))


#: build_info key: JSON object "<analysis>:<dataset>:<model>" -> a sentence the dashboard shows where an analysis
#: stored no rows on purpose (a random control has no receptive field, ...); null once it ran normally
NOTES_KEY = "analysis_notes"


def record_note(ctx, text: str | None) -> None:
    """Say (in build_info[NOTES_KEY]) why this (analysis, dataset, model) stored nothing or less than usual;
    None clears an earlier note. Also logged."""
    if text:
        log.info("%s %s x %s: %s", ctx.analysis, ctx.dataset, ctx.model, text)
    if ctx.store is not None:
        ctx.store.record(ctx.con, NOTES_KEY, f"{ctx.analysis}:{ctx.dataset}:{ctx.model}", text)


def model_row(con, model: str) -> dict:
    """The `models` row of `model` (kind, family, reference_model, input_size, source, ...)."""
    return registry.read_model(con, model)


def is_random_control(con, model: str) -> bool:
    row = model_row(con, model)
    return row["kind"] == "control" and row["family"] == "random"


def is_pixels_control(con, model: str) -> bool:
    row = model_row(con, model)
    return row["kind"] == "control" and row["family"] == "pixels"


def open_model(con, dataset: str, model: str, where):
    """(ActivationSource, ImageFeed of the dataset's stimuli in idx order) for analyses that must run a model.

    Tests replace this function to analyse an in-memory model."""

    inputs = load_inputs(con, dataset)
    return open_source(con, model, where), PngFeed(inputs.stimulus_ids, inputs.pngs)


def try_open_model(con, dataset: str, model: str, where, what: str):
    """open_model, or None (with a warning saying what is skipped) when the model cannot be run here
    (no ONNX file recorded, the file missing): the analyses that need no model still run."""
    try:
        return open_model(con, dataset, model, where)
    except (RuntimeError, FileNotFoundError) as exc:
        log.warning("%s cannot be run (%s): %s skipped", model, exc, what)
        return None


def dataset_image_geometry(con, dataset: str) -> tuple[int, float]:
    """(image side in pixels, degrees the image spans) of a dataset's stimuli (8 degrees when unknown)."""
    px = con.execute("SELECT max(width), max(height) FROM stimuli WHERE dataset = ?", [dataset]).fetchone()
    deg = con.execute("SELECT visual_degrees FROM datasets WHERE dataset = ?", [dataset]).fetchone()
    side = int(max(v for v in px if v is not None)) if px and any(v is not None for v in px) else 256
    return side, float(deg[0]) if deg and deg[0] else 8.0


def units_of(df: pd.DataFrame) -> list[tuple[int, int, int, int]]:
    """(layer_idx, channel, y, x) tuples of a frame's rows."""
    return [tuple(int(v) for v in row) for row in df[["layer_idx", "channel", "y", "x"]].itertuples(index=False)]


def stimulus_batches(indices: Sequence[int], batch_size: int):
    """Consecutive batches of stimulus indices."""
    indices = np.asarray(indices, dtype=np.int64)
    for b0 in range(0, len(indices), batch_size):
        yield indices[b0 : b0 + batch_size]
