"""Figures of the Layers page: where the best units are (Figure 6), depth across models (S7, S9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from components.figures.common import require_columns
from components.theme import CATEGORY_COLORS, OTHER_COLOR, base_layout, empty_figure, region_color


def make_layer_histogram_figure(best: pd.DataFrame, layers: pd.DataFrame, *, region: str, model: str) -> go.Figure:
    """Figure 6 left: how many sites have their best unit (whole model) in each layer."""
    require_columns(best, ("region", "layer_idx"), "layer histogram")
    require_columns(layers, ("layer_idx", "layer"), "layer histogram")
    sub = best[best["region"] == region]
    if sub.empty:
        return empty_figure(f"No {region} matches")
    counts = sub["layer_idx"].value_counts().reindex(layers["layer_idx"], fill_value=0)
    fig = go.Figure(
        go.Bar(
            x=layers["layer_idx"],
            y=counts.to_numpy(),
            marker_color=region_color(region),
            customdata=layers["layer"],
            name=region,
            hovertemplate="layer %{x}: %{customdata}<br>%{y} sites<extra></extra>",
        )
    )
    fig.update_xaxes(title="layer (network order)")
    fig.update_yaxes(title="sites whose best unit is here")
    return base_layout(fig, title=f"{model}: layer of each {region} site's best unit", height=360)


def make_layer_spread_figure(
    layer_best: pd.DataFrame,
    layers: pd.DataFrame,
    *,
    region: str,
    model: str,
    control: pd.DataFrame | None = None,
    control_name: str | None = None,
) -> go.Figure:
    """Figure 6 right: per layer, the spread of sites' best-in-layer r, the median, and a control's median."""
    require_columns(layer_best, ("region", "layer_idx", "r"), "layer spread")
    sub = layer_best[layer_best["region"] == region]
    if sub.empty:
        return empty_figure(f"No {region} layer matches")
    fig = go.Figure(
        go.Box(
            x=sub["layer_idx"],
            y=sub["r"],
            marker_color=region_color(region),
            boxpoints=False,
            name=f"{model} (sites)",
            line={"width": 1},
        )
    )
    med = sub.groupby("layer_idx")["r"].median()
    fig.add_trace(
        go.Scatter(
            x=med.index,
            y=med.to_numpy(),
            mode="lines+markers",
            name="median",
            line={"color": "#000", "width": 2},
            marker={"size": 4},
            customdata=layers.set_index("layer_idx").reindex(med.index)["layer"],
            hovertemplate="layer %{x}: %{customdata}<br>median r %{y:.3f}<extra></extra>",
        )
    )
    if control is not None and not control.empty:
        c = control[control["region"] == region]
        cmed = c.groupby("layer_idx")["r"].median()
        fig.add_trace(
            go.Scatter(
                x=cmed.index,
                y=cmed.to_numpy(),
                mode="lines",
                name=f"{control_name} (median)",
                line={"color": OTHER_COLOR, "dash": "dash", "width": 2},
            )
        )
    fig.update_xaxes(title="layer (network order)")
    fig.update_yaxes(title="best r within the layer")
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return base_layout(fig, title=f"{model}: best unit per layer, {region} sites", height=420)


def make_depth_across_models_figure(depth: pd.DataFrame) -> go.Figure:
    """Figure S7: normalised depth of each site's best unit, mean and SD per model and region."""
    require_columns(depth, ("model", "region", "depth"), "depth across models")
    if depth.empty:
        return empty_figure("No model matched yet")
    fig = go.Figure()
    for region, group in depth.groupby("region", sort=False):
        stats = group.groupby("model")["depth"].agg(["mean", "std"]).sort_index()
        fig.add_trace(
            go.Scatter(
                x=stats["mean"],
                y=stats.index,
                mode="markers",
                name=region,
                error_x={"type": "data", "array": stats["std"].fillna(0).to_numpy()},
                marker={"color": region_color(region), "size": 10},
            )
        )
    fig.update_xaxes(title="normalised depth of the best unit (0 = input side, 1 = output side)", range=[-0.05, 1.05])
    fig.update_yaxes(title=None)
    return base_layout(
        fig,
        title="Depth of the matches across models (mean ± SD over sites)",
        height=max(260, 60 * depth["model"].nunique() + 120),
    )


def make_family_depth_figure(frames: dict[str, pd.DataFrame], *, region: str) -> go.Figure:
    """Figure S9: median best-in-layer r against normalised depth, one line per model of a family."""
    if not frames:
        return empty_figure("No models to compare")
    fig = go.Figure()
    for i, (model, frame) in enumerate(frames.items()):
        require_columns(frame, ("region", "depth", "layer_idx", "r"), "family depth")
        sub = frame[frame["region"] == region]
        if sub.empty:
            continue
        med = sub.groupby(["layer_idx", "depth"])["r"].median().reset_index()
        fig.add_trace(
            go.Scatter(
                x=med["depth"],
                y=med["r"],
                mode="lines+markers",
                name=model,
                line={"color": CATEGORY_COLORS[i % len(CATEGORY_COLORS)]},
                marker={"size": 4},
            )
        )
    fig.update_xaxes(title="normalised depth", range=[-0.02, 1.02])
    fig.update_yaxes(title=f"median best r within the layer ({region})")
    return base_layout(fig, title=f"Models compared by depth ({region})", height=380)


def layer_summary(layer_best: pd.DataFrame, region: str) -> pd.DataFrame:
    """Median best-in-layer r per layer (the table under Figure 6)."""
    sub = layer_best[layer_best["region"] == region]
    if sub.empty:
        return pd.DataFrame(columns=["layer_idx", "layer", "median_r", "sites"])
    out = sub.groupby(["layer_idx", "layer"])["r"].agg(median_r="median", sites="size").reset_index()
    out["median_r"] = np.round(out["median_r"], 4)
    return out
