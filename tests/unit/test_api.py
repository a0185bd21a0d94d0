"""The notebook API returns the same data the app shows, and says clearly what it cannot give."""

from __future__ import annotations

import numpy as np
import pytest

from backend.api import open_database
from tests.support.factories import mini_tables, toy_activations


def test_notebook_api_round_trips_data(results_env):
    us = open_database(results_env.served_path)
    assert us.datasets()["dataset"].tolist() == ["mini"]
    sites, matrix = us.responses("mini", region="V4")
    np.testing.assert_allclose(matrix, mini_tables().responses[:4], atol=1e-6)
    best = us.matches("mini", "toy")
    assert len(best) == 9 and best["r"].between(-1, 1).all()
    top = us.matches("mini", "toy", site_id="V4-002")
    assert top["rank"].tolist() == list(range(1, 11))
    unit = top.iloc[0]
    values = us.activations("mini", "toy", int(unit.layer_idx), int(unit.channel), int(unit.y), int(unit.x))
    expected = toy_activations(24)[int(unit.layer_idx)][:, int(unit.channel), int(unit.y), int(unit.x)]
    np.testing.assert_allclose(values, expected, atol=1e-6)
    ranks = us.unit_sites("mini", "toy", int(unit.layer_idx), int(unit.channel), int(unit.y), int(unit.x))
    whole = ranks[ranks["scope"] == "model"].set_index("site_id")
    assert whole.loc["V4-002", "rank"] == 1 and whole.loc["V4-002", "r"] == pytest.approx(unit.r)
    assert set(ranks["scope"]) <= {"model", "layer", "featuremap"} and (ranks["rank"] >= 1).all()
    assert us.unit_receptive_field("mini", "toy", 0, 0).empty
    assert us.image("mini", "stim000").size == (32, 32)
    assert set(us.scores("mini")["metric"]) >= {"neural_correlation"}
    with pytest.raises(KeyError, match="was not gathered"):
        us.activations("mini", "toy", 0, 0, 0, 0)
    assert "build" in repr(us)
    us.close()
