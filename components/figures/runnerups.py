"""Figure 7 / S10: every site's top-K r as an image, with the top-1 line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.figures.common import require_columns
from components.theme import base_layout, empty_figure, region_color


def make_runnerup_heatmap_figure(df: pd.DataFrame, *, region: str, model: str) -> go.Figure:
    require_columns(df, ("site_id", "site_idx", "rank", "r"), "runner-up heatmap")
    if df.empty:
        return empty_figure(f"No {region} matches")
    wide = df.pivot(index="site_idx", columns="rank", values="r").sort_index()
    order = wide[1].sort_values(ascending=False).index if 1 in wide.columns else wide.index
    wide = wide.loc[order]
    ids = df.drop_duplicates("site_idx").set_index("site_idx").loc[order, "site_id"].to_numpy()
    fig = make_subplots(rows=1, cols=2, column_widths=[0.8, 0.2], shared_yaxes=True, horizontal_spacing=0.02)
    fig.add_trace(
        go.Heatmap(
            z=wide.to_numpy(),
            x=wide.columns.to_numpy(),
            y=np.arange(len(wide)),
            colorscale="Viridis",
            colorbar={"title": {"text": "r"}, "x": 1.02},
            customdata=np.repeat(ids[:, None], wide.shape[1], axis=1),
            hovertemplate="%{customdata}<br>rank %{x}: r = %{z:.3f}<extra></extra>",
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Scatter(
            x=wide[wide.columns[0]].to_numpy(),
            y=np.arange(len(wide)),
            mode="lines",
            line={"color": region_color(region), "width": 2},
            name="top-1 r",
            customdata=ids,
            hovertemplate="%{customdata}: top-1 r = %{x:.3f}<extra></extra>",
        ),
        1,
        2,
    )
    fig.update_yaxes(
        title=f"{region} sites (sorted by top-1 r)", showticklabels=False, autorange="reversed", row=1, col=1
    )
    fig.update_xaxes(title="rank", row=1, col=1)
    fig.update_xaxes(title="top-1 r", row=1, col=2)
    fig.update_layout(showlegend=False)
    return base_layout(fig, title=f"{model}: the top {wide.shape[1]} units of every {region} site", height=520)
