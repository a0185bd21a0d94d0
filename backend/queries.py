"""Every SQL statement the app and the notebook API run, as named functions with bound parameters.

Rules (STYLE.md): values are always bound (`?`), never formatted into SQL; the few identifiers that
vary come from backend.schema's allowlist. Each function takes a `Database` and returns a DataFrame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend import schema
from backend.db import Database


def build_info(db: Database) -> dict[str, str]:
    df = db.query("SELECT key, value FROM build_info ORDER BY key")
    return dict(zip(df["key"], df["value"], strict=True))


def table_counts(db: Database) -> dict[str, int]:
    out = {}
    for table in schema.TABLES:  # names from the schema allowlist only
        out[table.name] = int(db.query(f'SELECT count(*) AS n FROM "{table.name}"')["n"].iloc[0])
    return out


def datasets(db: Database) -> pd.DataFrame:
    return db.query(
        "SELECT dataset, title, description, source, synthetic, visual_degrees, n_stimuli, n_sites, "
        "n_repetitions, seed FROM datasets ORDER BY synthetic, dataset"
    )


def stimuli(db: Database, dataset: str) -> pd.DataFrame:
    return db.query(
        "SELECT stimulus_id, idx, category, object, variation, ty, tz, s, rxy, rxz, ryz, background_id, "
        "filename, width, height FROM stimuli WHERE dataset = ? ORDER BY idx",
        [dataset],
    )


def stimulus_png(db: Database, dataset: str, stimulus_id: str) -> bytes | None:
    df = db.query("SELECT png FROM stimulus_images WHERE dataset = ? AND stimulus_id = ?", [dataset, stimulus_id])
    return bytes(df["png"].iloc[0]) if len(df) else None


def sites(db: Database, dataset: str) -> pd.DataFrame:
    return db.query(
        "SELECT site_id, idx, region, subregion, animal, electrode_array, reliability, rf_x_deg, rf_y_deg, "
        "rf_size_deg, "
        "true_rf_x_deg, true_rf_y_deg, true_rf_size_deg FROM sites WHERE dataset = ? ORDER BY idx",
        [dataset],
    )


def response_matrix(db: Database, dataset: str, region: str | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Sites (of `region`, or all) x stimuli (idx order) trial-averaged responses, aligned by id."""
    site_df = db.query(
        "SELECT site_id, idx, region FROM sites WHERE dataset = ? AND (? IS NULL OR region = ?) ORDER BY idx",
        [dataset, region, region],
    )
    long = db.query(
        "SELECT s.idx AS site_idx, st.idx AS stim_idx, r.response FROM responses r "
        "JOIN sites s ON s.dataset = r.dataset AND s.site_id = r.site_id "
        "JOIN stimuli st ON st.dataset = r.dataset AND st.stimulus_id = r.stimulus_id "
        "WHERE r.dataset = ? AND (? IS NULL OR s.region = ?)",
        [dataset, region, region],
    )
    n_stim = int(db.query("SELECT count(*) AS n FROM stimuli WHERE dataset = ?", [dataset])["n"].iloc[0])
    row_of = pd.Series(np.arange(len(site_df)), index=site_df["idx"].to_numpy())
    matrix = np.full((len(site_df), n_stim), np.nan, dtype=np.float32)
    if len(long):
        matrix[row_of.loc[long["site_idx"].to_numpy()].to_numpy(), long["stim_idx"].to_numpy()] = long["response"]
    return site_df, matrix


def site_rf_map(db: Database, dataset: str, site_id: str) -> pd.DataFrame:
    return db.query(
        "SELECT m.grid_responses, m.map, m.map_size, m.extent_deg, s.rf_x_deg, s.rf_y_deg, s.rf_size_deg, "
        "s.true_rf_x_deg, s.true_rf_y_deg, s.true_rf_size_deg FROM site_rf_maps m JOIN sites s "
        "ON s.dataset = m.dataset AND s.site_id = m.site_id WHERE m.dataset = ? AND m.site_id = ?",
        [dataset, site_id],
    )
