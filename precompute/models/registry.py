"""The `models` and `layers` tables (backend/schema/) and the content-addressed ONNX files.

ONNX files live at <data folder>/models/<sha256>.onnx, where the data folder of a Store is the folder
of its served database; `models.onnx_path` holds the path relative to the data folder, so a data
folder can be moved or mounted elsewhere whole.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from backend import schema
from precompute.core.catalog import close_model_hint, has_model
from precompute.core.errors import UserError
from precompute.models.base import LayerInfo

log = logging.getLogger(__name__)

KINDS = ("pretrained", "untrained", "control", "onnx")


@dataclass
class ModelRecord:
    """One `models` row (created_at, total_units and n_layers are filled in when written)."""

    model: str
    family: str
    source: str
    kind: str
    input_size: int
    in_channels: int = 3
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    reference_model: str | None = None
    imagenet_top1: float | None = None
    imagenet_top5: float | None = None
    parameters: int | None = None
    layout: str = "nchw"
    onnx_path: str | None = None
    sha256: str | None = None


def data_folder(store) -> Path:
    """The data folder of a Store: the folder of its served database (tests keep it in a temp dir)."""
    return Path(store.served_path).parent


def models_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "models"


def store_onnx_bytes(data: bytes, data_dir: Path) -> tuple[str, str]:
    """Write ONNX bytes content-addressed under <data_dir>/models; return (path relative to data_dir, sha256).

    Writing is atomic (temporary file + rename) and idempotent, so it is safe before the transaction
    that records the model: a failed step leaves at most an unreferenced file.
    """
    sha = hashlib.sha256(data).hexdigest()
    folder = models_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{sha}.onnx"
    if not target.exists():
        tmp = target.with_name(f".{sha}.onnx.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return str(target.relative_to(data_dir)), sha


def check_new_name(con: duckdb.DuckDBPyConnection, model: str, replace: bool) -> None:
    """UserError when `model` exists and replace is not set; also rejects empty or odd names."""
    if not model or model.strip() != model or "/" in model:
        raise UserError(f"invalid model name {model!r}: use letters, digits, '-', '_' and '.'")
    if not replace and has_model(con, model):
        raise UserError(
            f"a model named {model!r} already exists; pass --replace to replace it "
            f"(this removes every result derived from it) or choose another name"
        )


def write_model(con: duckdb.DuckDBPyConnection, record: ModelRecord, layers: list[LayerInfo], *, replace: bool) -> None:
    """Insert one model and its layers (inside the caller's transaction).

    An existing model of the same name is a UserError unless `replace`, which first removes it and
    every result derived from it (backend.schema.remove_model_rows).
    """
    if record.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {record.kind!r}")
    if not layers:
        raise UserError(f"model {record.model!r} has no layers")
    check_new_name(con, record.model, replace)
    schema.remove_model_rows(con, record.model)
    total_units = int(sum(la.units for la in layers))
    con.execute(
        "INSERT INTO models (model, family, source, kind, reference_model, input_size, in_channels, mean, std, "
        "imagenet_top1, imagenet_top5, parameters, total_units, n_layers, layout, onnx_path, sha256, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            record.model,
            record.family,
            record.source,
            record.kind,
            record.reference_model,
            record.input_size,
            record.in_channels,
            [float(v) for v in record.mean],
            [float(v) for v in record.std],
            record.imagenet_top1,
            record.imagenet_top5,
            record.parameters,
            total_units,
            len(layers),
            record.layout,
            record.onnx_path,
            record.sha256,
            datetime.now(UTC).replace(tzinfo=None),
        ],
    )
    depth = np.linspace(0.0, 1.0, len(layers)) if len(layers) > 1 else np.zeros(1)
    rows = pd.DataFrame(
        {
            "model": record.model,
            "layer_idx": np.arange(len(layers), dtype=np.int32),
            "layer": [la.layer for la in layers],
            "op_type": [la.op_type for la in layers],
            "depth": depth,
            "channels": [la.channels for la in layers],
            "height": [la.height for la in layers],
            "width": [la.width for la in layers],
            "units": np.array([la.units for la in layers], dtype=np.int64),
            "output_name": [la.output_name for la in layers],
            "layout": [la.layout or None for la in layers],
        }
    )
    con.register("_new_layers", rows)
    try:
        con.execute(
            "INSERT INTO layers SELECT model, layer_idx, layer, op_type, depth, channels, height, width, "
            "units, output_name, layout FROM _new_layers"
        )
    finally:
        con.unregister("_new_layers")


def remove_model(con: duckdb.DuckDBPyConnection, model: str) -> str | None:
    """Remove a model and everything derived from it; return its ONNX path (relative) or None. UserError if absent."""
    row = con.execute("SELECT onnx_path FROM models WHERE model = ?", [model]).fetchone()
    if row is None:
        raise UserError(f"there is no model named {model!r}{close_model_hint(con, model)}")
    schema.remove_model_rows(con, model)
    return row[0]


def delete_unreferenced_onnx(con: duckdb.DuckDBPyConnection, data_dir: Path, onnx_path: str | None) -> None:
    """Delete an ONNX file no model refers to any more (call after the removing transaction committed)."""
    if not onnx_path:
        return
    used = con.execute("SELECT count(*) FROM models WHERE onnx_path = ?", [onnx_path]).fetchone()[0]
    if used == 0:
        path = Path(data_dir) / onnx_path
        if path.exists():
            path.unlink()
            log.info("deleted unreferenced %s", path)


def read_model(con: duckdb.DuckDBPyConnection, model: str) -> dict:
    """The `models` row of `model` as a dict; UserError listing close names when absent."""
    cur = con.execute("SELECT * FROM models WHERE model = ?", [model])
    values = cur.fetchone()
    if values is None:
        raise UserError(f"there is no model named {model!r}{close_model_hint(con, model)}")
    row = dict(zip([d[0] for d in cur.description], values, strict=True))
    for key in ("mean", "std"):
        if row.get(key) is not None:
            row[key] = [float(v) for v in row[key]]
    return row


def read_layers(con: duckdb.DuckDBPyConnection, model: str) -> list[LayerInfo]:
    """The model's layers in order; `layout` is "" where the row has none (the model's layout applies), also
    when the file predates the layers.layout column (read-only connections are not upgraded)."""
    has_layout = bool(
        con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'layers' AND column_name = 'layout' "
            "AND table_schema = current_schema() AND table_catalog = current_database()"
        ).fetchone()[0]
    )
    rows = con.execute(
        "SELECT layer_idx, layer, channels, height, width, op_type, output_name, "
        + ("layout" if has_layout else "NULL")
        + " FROM layers WHERE model = ? ORDER BY layer_idx",
        [model],
    ).fetchall()
    return [
        LayerInfo(int(i), name, int(c), int(h), int(w), op or "", out or "", lay or "")
        for i, name, c, h, w, op, out, lay in rows
    ]


def list_models(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(
        "SELECT model, kind, family, input_size, n_layers, total_units, imagenet_top1, source "
        "FROM models ORDER BY model"
    ).df()


def layers_frame(con: duckdb.DuckDBPyConnection, model: str) -> pd.DataFrame:
    return con.execute(
        "SELECT layer_idx, layer, op_type, channels, height, width, units, depth, layout FROM layers "
        "WHERE model = ? ORDER BY layer_idx",
        [model],
    ).df()
