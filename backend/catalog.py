"""What this build holds: the served database, its datasets, sites, models and layers (cached by build id).

The lower half of the app's data functions: backend.params checks URL parameters against these, and
backend.data (which re-exports them) builds every figure's frame on top of them.
"""

from __future__ import annotations

import functools
import json

import pandas as pd

from backend import queries
from backend.cache import cached
from backend.commands import DEFAULT_MODEL
from backend.config import get_settings
from backend.db import Database, DatabaseMissingError
from backend.errors import NotFoundError

#: The model a results page opens on when the URL names none (when it is matched; else the first matched).
PREFERRED_MODEL = DEFAULT_MODEL


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


def analysis_notes(dataset: str, analysis: str | None = None, model: str | None = None) -> list[dict]:
    """What analyses said about this dataset (build_info['analysis_notes'], precompute/analyses/common.py):
    why a model has no rows for an analysis, or fewer than usual. [{analysis, model, note}], sorted."""
    raw = build_info().get("analysis_notes")
    try:
        notes = json.loads(raw) if raw else {}
    except ValueError:
        return []
    out = []
    for key, note in notes.items() if isinstance(notes, dict) else ():
        name, _, rest = str(key).partition(":")
        if not note or not rest.startswith(f"{dataset}:"):
            continue
        who = rest[len(dataset) + 1 :]
        if (analysis is None or name == analysis) and (model is None or who == model):
            out.append({"analysis": name, "model": who, "note": str(note)})
    return sorted(out, key=lambda n: (n["analysis"], n["model"]))


@cached(build_id)
def datasets() -> pd.DataFrame:
    return queries.datasets(database())


def require_dataset(dataset: str | None) -> str:
    """The dataset to show: the requested one if it exists, else the first one (raise if none).

    The one dataset check: every data function taking a dataset runs it before its query (so a hostile
    name never reaches SQL nor the cache), and backend.params offers it to the pages."""
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


def regions(dataset: str) -> list[str]:
    """The dataset's regions, in site order (first appearance)."""
    return list(dict.fromkeys(sites(dataset)["region"]))


@cached(build_id)
def models() -> pd.DataFrame:
    return queries.models(database())


@cached(build_id)
def matched_models(dataset: str) -> pd.DataFrame:
    return queries.matched_models(database(), require_dataset(dataset))


@cached(build_id)
def layers(model: str) -> pd.DataFrame:
    return queries.layers(database(), model)


@cached(build_id)
def layer_best(dataset: str, model: str) -> pd.DataFrame:
    return queries.layer_best(database(), dataset, model)


@cached(build_id)
def default_layer(dataset: str, model: str, region: str) -> int:
    """The region's best layer (highest median best-in-layer r): the model's "V4-like"/"IT-like" layer."""
    frame = layer_best(dataset, model)
    frame = frame[frame["region"] == region]
    if frame.empty:
        return 0
    return int(frame.groupby("layer_idx")["r"].median().idxmax())
