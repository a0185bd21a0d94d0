"""Small layout details: number formats, code spans, where long names may wrap, the S12 heatmap's axes."""

from __future__ import annotations

import importlib

import dash
import numpy as np
import pandas as pd

from components import empty
from components.figures.dataset import make_site_correlation_figure


def page(name):
    importlib.import_module("app")
    return importlib.import_module(f"pages.{name}")


def _find(node, component_id):
    if getattr(node, "id", None) == component_id:
        return node
    children = getattr(node, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found = _find(child, component_id)
            if found is not None:
                return found
    return None


def test_leaderboard_shows_imagenet_top1_with_one_decimal(results_env):
    grid = _find(page("overview").layout(dataset="mini"), "overview-leaderboard")
    column = next(c for c in grid.columnDefs if c["field"] == "imagenet_top1")
    assert "'.1f'" in column["valueFormatter"]["function"] and "(%)" in column["headerName"]
    assert all(
        "'.3f'" in c["valueFormatter"]["function"]
        for c in grid.columnDefs
        if c["field"] in ("V4", "IT", "V4_null", "IT_null")
    )


def test_not_computed_keeps_plain_words_out_of_the_code_span():
    alert = empty.not_computed(
        "Paired comparisons", "python -m precompute analyze --model MODEL", after="for a second model"
    )
    code = next(c for c in alert.children if isinstance(c, dash.html.Code))
    assert code.children == "python -m precompute analyze --model MODEL"
    assert alert.children[-1] == " for a second model."
    assert empty.not_computed("X", "cmd").children[-1] == "."


def test_layer_names_may_wrap_only_after_their_dots():
    parts = page("unit").breakable("blocks.1.1.bn1.act")
    words = [p for p in parts if isinstance(p, str)]
    assert "".join(words) == "blocks.1.1.bn1.act" and words == ["blocks.", "1.", "1.", "bn1.", "act"]
    assert sum(isinstance(p, dash.html.Wbr) for p in parts) == 4
    assert page("unit").breakable("features") == ["features"]


def test_site_correlation_heatmap_has_no_gridlines_beside_the_matrix():
    sites = ["a", "b", "c"]
    df = pd.DataFrame([{"site_a": x, "site_b": y, "r": 1.0 if x == y else 0.2} for x in sites for y in sites])
    fig = make_site_correlation_figure(df, region="V4")
    assert fig.layout.yaxis.scaleanchor == "x"
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        assert axis.constrain == "domain" and axis.showgrid is False
    assert np.asarray(fig.data[0].z).shape == (3, 3)
