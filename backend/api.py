"""A small Python API for notebooks: the dashboard's own queries, as DataFrames.

    >>> from backend.api import open_database
    >>> us = open_database("data/unitscope.duckdb")
    >>> us.datasets()
    >>> us.matches("synthetic-hvm", "efficientnet-lite0", site_id="Synth_L_P_0_1")
    >>> sites, responses = us.responses("synthetic-hvm", region="IT")   # sites x stimuli (idx order)
    >>> us.activations("synthetic-hvm", "efficientnet-lite0", layer_idx=20, channel=5, y=3, x=4)
    >>> us.unit_sites("synthetic-hvm", "efficientnet-lite0", layer_idx=20, channel=5, y=3, x=4)

Read-only: it opens the served file the way the app does, so it never disturbs a running build.
Every method returns a DataFrame (or NumPy arrays where the data is a matrix); column names are the
schema's (docs/schema.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from backend import queries
from backend.config import get_settings
from backend.db import Database


class Unitscope:
    """One Unitscope database, opened read-only."""

    def __init__(self, path: Path | str | None = None):
        self.db = Database(path or get_settings().db_path)

    def __repr__(self) -> str:
        return f"Unitscope({str(self.db.path)!r}, build {self.build_id()[:8]})"

    def build_id(self) -> str:
        return self.db.build_id()

    def build_info(self) -> dict[str, str]:
        return queries.build_info(self.db)

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        """Any read-only SQL (the connection is read-only: nothing can be changed through it)."""
        return self.db.query(query, params)

    # datasets
    def datasets(self) -> pd.DataFrame:
        return queries.datasets(self.db)

    def stimuli(self, dataset: str) -> pd.DataFrame:
        return queries.stimuli(self.db, dataset)

    def sites(self, dataset: str) -> pd.DataFrame:
        return queries.sites(self.db, dataset)

    def responses(self, dataset: str, region: str | None = None) -> tuple[pd.DataFrame, np.ndarray]:
        """(sites, matrix): trial-averaged responses, sites x stimuli in `stimuli.idx` order."""
        return queries.response_matrix(self.db, dataset, region)

    def image(self, dataset: str, stimulus_id: str):
        """A stimulus as a PIL image."""
        import io

        from PIL import Image

        png = queries.stimulus_png(self.db, dataset, stimulus_id)
        if png is None:
            raise KeyError(f"no stimulus {stimulus_id!r} in {dataset!r}")
        return Image.open(io.BytesIO(png))

    # models and matches
    def models(self) -> pd.DataFrame:
        return queries.models(self.db)

    def layers(self, model: str) -> pd.DataFrame:
        return queries.layers(self.db, model)

    def matches(self, dataset: str, model: str, site_id: str | None = None) -> pd.DataFrame:
        """Top-K units over the whole model: every site's rank 1 unit, or one site's whole top-K."""
        if site_id is not None:
            return queries.site_matches(self.db, dataset, model, site_id)
        return queries.best_matches(self.db, dataset, model)

    def layer_matches(self, dataset: str, model: str) -> pd.DataFrame:
        """Every site's best unit within every layer."""
        return queries.layer_best(self.db, dataset, model)

    def activations(self, dataset: str, model: str, layer_idx: int, channel: int, y: int = 0, x: int = 0) -> np.ndarray:
        """A gathered unit's activations over the stimuli (idx order)."""
        values = queries.unit_values(self.db, dataset, model, layer_idx, channel, y, x)
        if values is None:
            raise KeyError(
                f"unit ({layer_idx}, {channel}, {y}, {x}) of {model} was not gathered on {dataset}; "
                "gathered units are every site's top-K and 10 random units per site"
            )
        return values

    def unit_sites(
        self, dataset: str, model: str, layer_idx: int, channel: int, y: int = 0, x: int = 0
    ) -> pd.DataFrame:
        """Every site that has this unit in a top-K list (what the Unit page lists), one row per site and
        list: `scope` is model (matches), layer (layer_matches) or featuremap (featuremap_matches)."""
        return queries.unit_site_ranks(self.db, dataset, model, layer_idx, channel, y, x)

    def unit_receptive_field(
        self, dataset: str, model: str, layer_idx: int, channel: int, y: int = 0, x: int = 0
    ) -> pd.DataFrame:
        """The unit's receptive field, one row per method (empty when not computed)."""
        return queries.unit_rf(self.db, dataset, model, layer_idx, channel, y, x)

    # statistics and analyses
    def scores(self, dataset: str) -> pd.DataFrame:
        return queries.scores(self.db, dataset)

    def site_scores(self, dataset: str, metric: str) -> pd.DataFrame:
        return queries.site_metric(self.db, dataset, metric)

    def selection_curve(self, dataset: str) -> pd.DataFrame:
        return queries.selection_curve(self.db, dataset)

    def model_comparisons(self, dataset: str) -> pd.DataFrame:
        return queries.model_comparisons(self.db, dataset)

    def close(self) -> None:
        self.db.close()


def open_database(path: Path | str | None = None) -> Unitscope:
    """Open a Unitscope database read-only (default: the configured served file)."""
    return Unitscope(path)
