"""Figures of the Unit page: one unit's responses per stimulus category (its scatter against a site is
Figure 2's `make_site_scatter_figure`, its receptive field `make_unit_rf_figure`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from backend.commands import precompute
from components.figures.common import require_columns
from components.theme import CATEGORY_COLORS, base_layout, empty_figure


def make_unit_category_figure(activity: pd.DataFrame | None, *, model: str, unit_label: str) -> go.Figure:
    """The unit's activation over stimuli, one box per category (same category colours as the scatter)."""
    if activity is None:
        return empty_figure(
            "This unit's activations were not gathered: the gather pass stores every site's "
            f"top-K units ({precompute('rf')} / analyze can ask for more)"
        )
    require_columns(activity, ("category", "activation"), "unit categories")
    if activity.empty:
        return empty_figure("No stimuli")
    fig = go.Figure()
    for i, (category, group) in enumerate(activity.groupby("category", sort=True)):
        color = CATEGORY_COLORS[i % len(CATEGORY_COLORS)]
        fig.add_trace(
            go.Box(
                y=group["activation"].to_numpy(),
                name=str(category),
                marker_color=color,
                line={"color": color},
                boxmean=True,
                boxpoints=False,
                showlegend=False,
                hovertemplate=f"{category}<br>%{{y:.3f}}<extra></extra>",
            )
        )
    values = activity["activation"].to_numpy(np.float64)
    mean = float(np.mean(values))
    fig.layout["shapes"] = [
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "yref": "y",
            "y0": mean,
            "y1": mean,
            "line": {"dash": "dot", "color": "#555", "width": 1},
        }
    ]
    fig.layout["yaxis"] = {"title": {"text": "activation"}}
    fig.layout["xaxis"] = {"title": {"text": "category"}}
    title = f"{model} {unit_label}: activation per category ({len(activity)} stimuli; dotted: the mean)"
    return base_layout(fig, title=title, height=400)
