"""The app's data functions: one call per figure or table, cached by build id.

Callbacks call exactly one of these and hand the DataFrame to a pure figure function. Arguments are
validated against what the database holds before any query uses them (a bad URL parameter raises
`NotFoundError`, which pages show as a friendly message).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from backend import queries
from backend.cache import cached
from backend.config import get_settings
from backend.db import Database, DatabaseMissingError


class NotFoundError(LookupError):
    """A requested dataset, site, stimulus, model ... does not exist in this build."""


@functools.lru_cache(maxsize=8)
def _database(path: str) -> Database:
    return Database(path)


def database() -> Database:
    return _database(str(get_settings().db_path))


def database_ready() -> bool:
    return database().exists()


def build_id() -> str:
    try:
        return database().build_id()
    except DatabaseMissingError:
        return "missing"


@cached(build_id)
def build_info() -> dict[str, str]:
    return queries.build_info(database())


@cached(build_id)
def datasets() -> pd.DataFrame:
    return queries.datasets(database())


def require_dataset(dataset: str | None) -> str:
    """The dataset to show: the requested one if it exists, else the first one (raise if none)."""
    frame = datasets()
    names = frame["dataset"].tolist()
    if not names:
        raise NotFoundError("no dataset in the database yet")
    if dataset is None or dataset == "":
        return names[0]
    if dataset not in names:
        raise NotFoundError(f"unknown dataset {str(dataset)[:80]!r}; available: {', '.join(names)}")
    return dataset


@cached(build_id)
def stimuli(dataset: str) -> pd.DataFrame:
    return queries.stimuli(database(), require_dataset(dataset))


def stimulus_png(dataset: str, stimulus_id: str) -> bytes | None:
    # not cached: PNGs are served by a route with HTTP caching headers
    return queries.stimulus_png(database(), dataset, stimulus_id)


@cached(build_id)
def sites(dataset: str) -> pd.DataFrame:
    return queries.sites(database(), require_dataset(dataset))


@cached(build_id)
def site_correlations(dataset: str, region: str) -> pd.DataFrame:
    """Site-by-site Pearson correlation of trial-averaged responses over stimuli (Figure S12).

    Long format: site_a, site_b, r, with sites in array order (site idx).
    """
    with database().pinned():
        site_df, matrix = queries.response_matrix(database(), require_dataset(dataset), region)
    if len(site_df) == 0:
        return pd.DataFrame(columns=["site_a", "site_b", "r"])
    corr = np.corrcoef(matrix.astype(np.float64))
    ids = site_df["site_id"].to_numpy()
    return pd.DataFrame({
        "site_a": np.repeat(ids, len(ids)),
        "site_b": np.tile(ids, len(ids)),
        "r": corr.ravel(),
    })


@cached(build_id)
def site_rf(dataset: str, site_id: str) -> pd.DataFrame:
    return queries.site_rf_map(database(), require_dataset(dataset), site_id)
