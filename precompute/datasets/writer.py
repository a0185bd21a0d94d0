"""Write one dataset (DatasetTables) into the working database in one step, then publish.

Every generator and importer ends here, so the dataset tables always have the same shape: stimuli in
`idx` order, sites in `idx` order, the response matrix as long-format rows, trials when present.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from backend import schema
from precompute.core.catalog import dataset_names, has_dataset
from precompute.core.errors import UserError
from precompute.core.failpoints import failpoint
from precompute.core.steps import dataset_step
from precompute.core.store import Store
from precompute.datasets.folds import write_folds
from precompute.datasets.tables import DatasetTables

log = logging.getLogger(__name__)


def check_tables(tables: DatasetTables) -> None:
    """Internal consistency of a DatasetTables (importers validate user input before this)."""
    n_stim, n_sites = len(tables.stimuli), len(tables.sites)
    if tables.responses.shape != (n_sites, n_stim):
        raise ValueError(f"responses shape {tables.responses.shape} != (sites {n_sites}, stimuli {n_stim})")
    if len(tables.images) != n_stim:
        raise ValueError(f"{len(tables.images)} images for {n_stim} stimuli")
    if tables.trials is not None and tables.trials.shape[:2] != (n_sites, n_stim):
        raise ValueError(f"trials shape {tables.trials.shape} does not start with ({n_sites}, {n_stim})")
    for frame, label in ((tables.stimuli, "stimuli"), (tables.sites, "sites")):
        idx = frame["idx"].to_numpy()
        if not np.array_equal(np.sort(idx), np.arange(len(frame))):
            raise ValueError(f"{label}.idx must be 0..n-1")
    if tables.stimuli["stimulus_id"].duplicated().any() or tables.sites["site_id"].duplicated().any():
        raise ValueError("duplicate stimulus or site ids")


def _frame_for(table: str, df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Select and order the schema's columns (missing optional ones become NULL)."""
    cols = schema.TABLES_BY_NAME[table].column_names
    out = pd.DataFrame({"dataset": [dataset] * len(df)})
    for c in cols[1:]:
        if c in df.columns:
            out[c] = df[c].to_numpy()
        else:
            out[c] = None
    return out


def _insert(con, table: str, frame) -> None:
    con.register("_incoming", frame)
    try:
        cols = ", ".join(f'"{c}"' for c in schema.TABLES_BY_NAME[table].column_names)
        con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _incoming')
    finally:
        con.unregister("_incoming")


def _long_table(site_ids: np.ndarray, stim_ids: np.ndarray, values: np.ndarray, dataset: str) -> pa.Table:
    """(sites x stimuli) -> rows (dataset, site_id, stimulus_id, response), site-major (sorted by site)."""
    n_sites, n_stim = values.shape
    return pa.table(
        {
            "dataset": pa.array([dataset] * (n_sites * n_stim)).dictionary_encode(),
            "site_id": pa.DictionaryArray.from_arrays(
                np.repeat(np.arange(n_sites, dtype=np.int32), n_stim), pa.array(site_ids)
            ),
            "stimulus_id": pa.DictionaryArray.from_arrays(
                np.tile(np.arange(n_stim, dtype=np.int32), n_sites), pa.array(stim_ids)
            ),
            "response": pa.array(values.astype(np.float32, copy=False).ravel()),
        }
    )


def _trials_table(site_ids, stim_ids, trials: np.ndarray, dataset: str) -> pa.Table:
    n_sites, n_stim, n_rep = trials.shape
    flat = trials.astype(np.float32, copy=False).reshape(-1)
    keep = ~np.isnan(flat)
    site_idx = np.repeat(np.arange(n_sites, dtype=np.int32), n_stim * n_rep)[keep]
    stim_idx = np.tile(np.repeat(np.arange(n_stim, dtype=np.int32), n_rep), n_sites)[keep]
    rep = np.tile(np.arange(n_rep, dtype=np.int16), n_sites * n_stim)[keep]
    return pa.table(
        {
            "dataset": pa.array([dataset] * int(keep.sum())).dictionary_encode(),
            "site_id": pa.DictionaryArray.from_arrays(site_idx, pa.array(site_ids)),
            "stimulus_id": pa.DictionaryArray.from_arrays(stim_idx, pa.array(stim_ids)),
            "repetition": pa.array(rep),
            "response": pa.array(flat[keep]),
        }
    )


def write_dataset(store: Store, name: str, tables: DatasetTables, *, replace: bool = False) -> None:
    """Write `tables` as dataset `name` in one step (transaction) and publish.

    An existing dataset of that name is refused unless `replace`, in which case it and every result
    derived from it are removed in the same transaction.
    """
    check_tables(tables)
    stimuli = tables.stimuli.sort_values("idx").reset_index(drop=True)
    sites = tables.sites.sort_values("idx").reset_index(drop=True)
    # rows of responses/trials follow the frames' original row order; reorder them to idx order
    stim_order = tables.stimuli["idx"].to_numpy().argsort()
    site_order = tables.sites["idx"].to_numpy().argsort()
    responses = tables.responses[site_order][:, stim_order]
    trials = tables.trials[site_order][:, stim_order] if tables.trials is not None else None
    stim_ids = stimuli["stimulus_id"].astype(str).to_numpy()
    site_ids = sites["site_id"].astype(str).to_numpy()
    images = [tables.images[i] for i in stim_order]

    with store.step(dataset_step(name)) as con:
        if has_dataset(con, name):
            if not replace:
                raise UserError(
                    f"a dataset named {name!r} already exists; pass --replace to overwrite it (this removes "
                    f"every result derived from it) or choose another --name"
                )
            log.info("replacing dataset %s and every result derived from it", name)
            schema.remove_dataset_rows(con, name)
            store.forget_derived(con, dataset=name)
        info = dict(tables.info)
        n_reps = info.get("n_repetitions")
        if n_reps is None and trials is not None:
            n_reps = int(np.median((~np.isnan(trials)).sum(axis=2)))
        row = {
            "dataset": name,
            "title": info.get("title", name),
            "description": info.get("description", ""),
            "source": info.get("source"),
            "synthetic": bool(info.get("synthetic", False)),
            "visual_degrees": float(info.get("visual_degrees", 8.0)),
            "n_stimuli": len(stimuli),
            "n_sites": len(sites),
            "n_repetitions": n_reps,
            "seed": info.get("seed"),
            "created_at": datetime.now(UTC).replace(tzinfo=None),
            "input_hash": info.get("input_hash"),
        }
        _insert(con, "datasets", pd.DataFrame([row]))
        _insert(con, "stimuli", _frame_for("stimuli", stimuli, name))
        _insert(
            con,
            "stimulus_images",
            pa.table(
                {
                    "dataset": [name] * len(stimuli),
                    "stimulus_id": stim_ids,
                    "png": pa.array(images, pa.binary()),
                }
            ),
        )
        failpoint("import.images_written")
        _insert(con, "sites", _frame_for("sites", sites, name))
        write_folds(con, name, stimuli)
        _insert(con, "responses", _long_table(site_ids, stim_ids, responses, name))
        if trials is not None:
            _insert(con, "trials", _trials_table(site_ids, stim_ids, trials, name))
        if tables.rf_maps is not None and len(tables.rf_maps):
            _insert(con, "site_rf_maps", _frame_for("site_rf_maps", tables.rf_maps, name))
        if info.get("seed") is not None:
            store.record(con, "seeds", dataset_step(name), info["seed"])
        if info.get("input_hash"):
            store.record(con, "input_hashes", dataset_step(name), info["input_hash"])
        if tables.extra:
            store.record(con, "dataset_extra", name, json.loads(json.dumps(tables.extra, default=str)))


def remove_dataset(store: Store, name: str) -> None:
    """Remove a dataset and every result derived from it (one step, then publish)."""
    with store.step(f"remove:dataset:{name}", record=False) as con:
        if not has_dataset(con, name):
            raise UserError(f"no dataset named {name!r}; known datasets: {', '.join(dataset_names(con)) or 'none'}")
        schema.remove_dataset_rows(con, name)
        store.forget_derived(con, dataset=name)
