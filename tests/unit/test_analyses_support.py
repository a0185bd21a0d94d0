"""Helpers for the analyses tests (an in-memory ActivationSource over the toy model) and tests of
precompute/analyses/common.py and the context's table writers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.analyses.common import derived_seed
from precompute.analyses.context import AnalysisContext
from precompute.models.base import LayerInfo
from precompute.statistics.scores import best_layers
from tests.support.factories import TOY_LAYERS, toy_activations


class ArraySource:
    """An ActivationSource whose activations are given arrays (stimuli, C, H, W) per layer, looked up by stimulus id."""

    def __init__(
        self, stimulus_ids: list[str], acts: list[np.ndarray], names: list[str] | None = None, model: str = "toy"
    ):
        self.model = model
        names = names or [f"layer{i}" for i in range(len(acts))]
        self.layers = [LayerInfo(i, names[i], *a.shape[1:]) for i, a in enumerate(acts)]
        self._row = {s: i for i, s in enumerate(stimulus_ids)}
        self._acts = acts
        self.calls = 0

    def activations(self, images, stimulus_ids, layer_indices=None):
        self.calls += 1
        rows = [self._row[s] for s in stimulus_ids]
        idx = range(len(self.layers)) if layer_indices is None else layer_indices
        return [self._acts[i][rows].astype(np.float32) for i in idx]

    def close(self) -> None:
        pass


class IdFeed:
    """An ImageFeed that only carries ids (ArraySource ignores the images)."""

    def __init__(self, stimulus_ids: list[str]):
        self.stimulus_ids = stimulus_ids

    def load(self, indices):
        return [np.zeros((2, 2), np.uint8) for _ in indices]


def toy_open_model(ctx):
    """Replacement for precompute.analyses.common.open_model: the toy model of tests/support/factories.py."""
    ids = ctx.stimulus_ids()
    seed = 1 if ctx.model == "toy2" else 0
    return ArraySource(ids, toy_activations(len(ids), seed), [n for n, *_ in TOY_LAYERS], ctx.model), IdFeed(ids)


def test_best_layers_picks_highest_median_and_earliest_on_ties():
    sites = pd.DataFrame({"site_id": ["a", "b", "c", "d"], "region": ["V4", "V4", "IT", "IT"]})
    rows = pd.DataFrame(
        {
            "site_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
            "layer_idx": [0, 1, 0, 1, 0, 1, 0, 1],
            "r": [0.5, 0.2, 0.7, 0.3, 0.4, 0.4, 0.2, 0.2],
        }
    )
    best = best_layers(rows, sites)
    assert best["V4"] == (0, 0.6)
    assert best["IT"][0] == 0  # tie: earliest layer


def test_replace_rows_replaces_only_its_model_and_checks_columns(store):
    import pytest

    with store.step("t") as con:
        df = pd.DataFrame(
            {
                "region": ["V4"],
                "layer_idx": [1],
                "basis": ["natural"],
                "run": [0],
                "value": [0.5],
                "seed": pd.array([None], dtype="Int64"),
            }
        )
        m1 = AnalysisContext(con=con, store=None, dataset="d", model="m1")
        m2 = AnalysisContext(con=con, store=None, dataset="d", model="m2")
        m1.replace_rows("rotations", df)
        m2.replace_rows("rotations", df)
        m1.replace_rows("rotations", df.assign(value=0.25))
        got = con.execute("SELECT model, value FROM rotations ORDER BY model").fetchall()
        assert got == [("m1", 0.25), ("m2", 0.5)]
        with pytest.raises(ValueError, match="unknown columns"):
            m1.replace_rows("rotations", df.assign(extra=1))


def test_derived_seed_is_stable_and_distinct():
    assert derived_seed(0, "a", 1) == derived_seed(0, "a", 1)
    assert derived_seed(0, "a", 1) != derived_seed(0, "a", 2)
    assert 0 <= derived_seed(5, "x") < 2**63
