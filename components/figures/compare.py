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
    fig = go.Figure(go.Scatter(x=merged["r_a"], y=merged["r_b"], mode="markers", text=merged["site_id"],
                               customdata=merged["site_id"], marker={"color": region_color(region), "opacity": 0.7},
                               hovertemplate="%{text}<br>" + model_a + " %{x:.3f}<br>" + model_b
                                             + " %{y:.3f}<extra></extra>"))
    lo = float(np.nanmin(merged[["r_a", "r_b"]].to_numpy())) - 0.02
    fig.add_trace(go.Scatter(x=[lo, 1], y=[lo, 1], mode="lines", line={"dash": "dot", "color": "#999"},
                             showlegend=False, hoverinfo="skip"))
    fig.update_xaxes(title=f"{model_a}: best r", range=[lo, 1])
    fig.update_yaxes(title=f"{model_b}: best r", range=[lo, 1])
    fig.update_layout(showlegend=False)
    return base_layout(fig, title=f"{region}: {model_a} better for {wins} of {len(merged)} sites (click a site)",
                       height=440)
