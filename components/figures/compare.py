"""Compare page figure: every site's best r under model A against model B."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from components.figures.common import require_columns
from components.theme import base_layout, empty_figure, region_color


def make_model_pair_figure(a: pd.DataFrame, b: pd.DataFrame, *, model_a: str, model_b: str, region: str) -> go.Figure:
    require_columns(a, ("site_id", "region", "r"), "model pair")
    require_columns(b, ("site_id", "region", "r"), "model pair")
    merged = a[a["region"] == region].merge(b[b["region"] == region], on=["site_id", "region"], suffixes=("_a", "_b"))
    if merged.empty:
        return empty_figure("No sites matched by both models")
    wins = int((merged["r_a"] > merged["r_b"]).sum())
    ra, rb = merged["r_a"].to_numpy(np.float64), merged["r_b"].to_numpy(np.float64)
    site_ids = merged["site_id"].astype(str).to_numpy()
    lo = float(np.nanmin(np.concatenate([ra, rb]))) - 0.02
    fig = go.Figure(
        data=[
            go.Scatter(
                x=ra,
                y=rb,
                mode="markers",
                text=site_ids,
                customdata=site_ids,
                marker={"color": region_color(region), "opacity": 0.7},
                hovertemplate="%{text}<br>" + model_a + " %{x:.3f}<br>" + model_b + " %{y:.3f}<extra></extra>",
            ),
            go.Scatter(
                x=[lo, 1],
                y=[lo, 1],
                mode="lines",
                line={"dash": "dot", "color": "#999"},
                showlegend=False,
                hoverinfo="skip",
            ),
        ]
    )
    # one range on both axes (and square), so the diagonal is the line of equal r
    fig.layout["xaxis"] = {"title": {"text": f"{model_a}: best r"}, "range": [lo, 1], "constrain": "domain"}
    fig.layout["yaxis"] = {
        "title": {"text": f"{model_b}: best r"},
        "range": [lo, 1],
        "scaleanchor": "x",
        "constrain": "domain",
    }
    fig.layout["showlegend"] = False
    return base_layout(
        fig, title=f"{region}: {model_a} better for {wins} of {len(merged)} sites (click a site)", height=440
    )
