"""Figures of the Controls page: rotated vs natural basis (Figure 9) and controls beside models."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from components.figures.common import require_columns
from components.theme import OTHER_COLOR, base_layout, empty_figure, region_color


def make_rotation_figure(rot: pd.DataFrame, *, region: str, command: str = "") -> go.Figure:
    """Figure 9: natural basis vs random rotations (mean ± SD over runs); the neural self-rotation first.

    `command`: what computes them, shown when there is nothing to draw."""
    require_columns(rot, ("model", "region", "basis", "run", "value"), "rotation figure")
    sub = rot[rot["region"] == region]
    if sub.empty:
        return empty_figure("Rotations are not computed yet" + (f" ({command})" if command else ""))
    stats = sub.groupby(["model", "basis"])["value"].agg(["mean", "std"]).reset_index()
    fig = go.Figure()
    neural = stats[stats["basis"] == "neural_self"]
    if not neural.empty:
        fig.add_trace(
            go.Bar(
                x=["neural population"],
                y=[neural["mean"].iloc[0]],
                name="neural, rotated vs itself",
                error_y={"type": "data", "array": [neural["std"].fillna(0).iloc[0]]},
                marker_color=OTHER_COLOR,
            )
        )
    for basis, label, opacity in (("natural", "natural basis", 1.0), ("rotated", "random rotations", 0.5)):
        part = stats[stats["basis"] == basis]
        fig.add_trace(
            go.Bar(
                x=part["model"],
                y=part["mean"],
                name=label,
                opacity=opacity,
                marker_color=region_color(region),
                error_y={"type": "data", "array": part["std"].fillna(0).to_numpy()},
            )
        )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="neural correlation of the layer")
    return base_layout(fig, title=f"{region}: natural vs randomly rotated feature basis (Figure 9)", height=400)


def make_controls_figure(scores: pd.DataFrame, *, region: str, metric: str = "neural_correlation") -> go.Figure:
    """Every model's score beside the controls (pixels, random, untrained: the dashed lines of Figure 6)."""
    require_columns(scores, ("model", "region", "metric", "value", "ci_low", "ci_high", "kind"), "controls figure")
    sub = scores[(scores["region"] == region) & (scores["metric"] == metric)].sort_values("value")
    if sub.empty:
        return empty_figure("No scores yet")
    fig = go.Figure(
        go.Bar(
            y=sub["model"],
            x=sub["value"],
            orientation="h",
            marker_color=[OTHER_COLOR if k == "control" else region_color(region) for k in sub["kind"]],
            marker_pattern_shape=["/" if k == "control" else "" for k in sub["kind"]],
            error_x={
                "type": "data",
                "symmetric": False,
                "array": (sub["ci_high"] - sub["value"]).fillna(0),
                "arrayminus": (sub["value"] - sub["ci_low"]).fillna(0),
            },
        )
    )
    fig.update_xaxes(title=f"{region} neural correlation (median best r)")
    return base_layout(fig, title=f"{region}: models and controls (hatched)", height=max(260, 40 * len(sub) + 100))
