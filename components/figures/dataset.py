"""Figures of the Dataset page: site correlations (Figure S12), receptive fields (Figure S2), reliability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from components.figures.common import require_columns
from components.theme import DIVERGING, REGION_COLORS, base_layout, empty_figure, region_color


def make_site_correlation_figure(df: pd.DataFrame, *, region: str) -> go.Figure:
    """Heatmap of site-by-site response correlations, sites in array order (long df: site_a, site_b, r)."""
    require_columns(df, ("site_a", "site_b", "r"), "site correlation heatmap")
    if df.empty:
        return empty_figure(f"No {region} sites in this dataset")
    order = list(dict.fromkeys(df["site_a"]))
    n = len(order)
    matrix = df["r"].to_numpy().reshape(n, n)
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=order,
            y=order,
            zmin=-1,
            zmax=1,
            colorscale=DIVERGING,
            colorbar={"title": {"text": "r"}},
            hovertemplate="%{y} vs %{x}<br>r = %{z:.3f}<extra></extra>",
        )
    )
    # square cells: the axes shrink their domain (constrain) rather than widen their range, so no empty,
    # grid-lined band beside the matrix
    fig.update_xaxes(
        showticklabels=False, title=f"{region} sites (array order)", showgrid=False, zeroline=False, constrain="domain"
    )
    fig.update_yaxes(
        showticklabels=False, autorange="reversed", scaleanchor="x", showgrid=False, zeroline=False, constrain="domain"
    )
    off_diag = matrix[~np.eye(n, dtype=bool)] if n > 1 else np.array([np.nan])
    return base_layout(
        fig,
        title=f"{region}: response correlation between sites (median off-diagonal r = {np.nanmedian(off_diag):.2f})",
        height=480,
    )


def _circle(x: float, y: float, diameter: float, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * np.pi, n)
    return x + diameter / 2 * np.cos(t), y + diameter / 2 * np.sin(t)


def make_rf_map_figure(row: pd.Series | None, *, site_id: str) -> go.Figure:
    """A site's mapped receptive field: smoothed map, estimated 1-SD circle and the true field."""
    if row is None:
        return empty_figure("This dataset has no receptive-field mapping for this site")
    size = int(row["map_size"])
    extent = float(row["extent_deg"])
    z = np.asarray(row["map"], dtype=float).reshape(size, size)  # image-like: row 0 = top (y = +extent/2)
    coords = np.linspace(-extent / 2, extent / 2, size)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=coords,
            y=coords[::-1],
            colorscale="Greys",
            showscale=False,
            hovertemplate="x %{x:.1f}°, y %{y:.1f}°<br>density %{z:.3f}<extra></extra>",
        )
    )
    if pd.notna(row.get("rf_x_deg")) and pd.notna(row.get("rf_size_deg")):
        cx, cy = _circle(row["rf_x_deg"], row["rf_y_deg"], row["rf_size_deg"])
        fig.add_trace(
            go.Scatter(x=cx, y=cy, mode="lines", name="mapped (1 SD)", line={"color": REGION_COLORS["V4"], "width": 3})
        )
    if pd.notna(row.get("true_rf_x_deg")) and pd.notna(row.get("true_rf_size_deg")):
        tx, ty = _circle(row["true_rf_x_deg"], row["true_rf_y_deg"], row["true_rf_size_deg"])
        fig.add_trace(
            go.Scatter(
                x=tx,
                y=ty,
                mode="lines",
                name="true (1 SD)",
                line={"color": REGION_COLORS["IT"], "width": 2, "dash": "dash"},
            )
        )
    fig.update_xaxes(title="x (deg)", range=[-extent / 2, extent / 2], zeroline=True)
    fig.update_yaxes(title="y (deg)", range=[-extent / 2, extent / 2], scaleanchor="x", zeroline=True)
    fig.update_layout(legend={"orientation": "h", "y": -0.2})
    return base_layout(fig, title=f"Receptive field of {site_id}", height=420)


def make_rf_scatter_figure(sites: pd.DataFrame) -> go.Figure:
    """Mapped vs true receptive-field centres and sizes of every site, by region."""
    require_columns(sites, ("site_id", "region", "rf_x_deg", "rf_y_deg", "rf_size_deg"), "RF scatter")
    mapped = sites.dropna(subset=["rf_x_deg", "rf_y_deg"])
    if mapped.empty:
        return empty_figure("This dataset has no receptive-field mapping")
    fig = go.Figure()
    for region, group in mapped.groupby("region", sort=False):
        fig.add_trace(
            go.Scatter(
                x=group["rf_x_deg"],
                y=group["rf_y_deg"],
                mode="markers",
                name=f"{region} (mapped)",
                marker={
                    "color": region_color(region),
                    "size": np.clip(group["rf_size_deg"].fillna(1) * 4, 4, 30),
                    "opacity": 0.6,
                    "line": {"width": 0},
                },
                customdata=np.stack([group["site_id"], group["rf_size_deg"]], axis=1),
                hovertemplate="%{customdata[0]}<br>centre (%{x:.2f}°, %{y:.2f}°)<br>size %{customdata[1]:.2f}°"
                "<extra></extra>",
            )
        )
    fig.update_xaxes(title="x (deg)", range=[-4.5, 4.5], zeroline=True)
    fig.update_yaxes(title="y (deg)", range=[-4.5, 4.5], scaleanchor="x", zeroline=True)
    return base_layout(fig, title="Mapped receptive-field centres (marker size ~ RF size)", height=420)


def make_reliability_figure(sites: pd.DataFrame) -> go.Figure:
    """Histogram of split-half reliability per region."""
    require_columns(sites, ("region", "reliability"), "reliability histogram")
    data = sites.dropna(subset=["reliability"])
    if data.empty:
        return empty_figure("No trials in this dataset: reliability is unknown")
    fig = go.Figure()
    for region, group in data.groupby("region", sort=False):
        label = f"{region} (median {group['reliability'].median():.2f})"
        fig.add_trace(
            go.Histogram(
                x=group["reliability"], name=label, marker_color=region_color(region), opacity=0.7, xbins={"size": 0.02}
            )
        )
    fig.update_layout(barmode="overlay", legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(title="split-half reliability (Spearman-Brown)")
    fig.update_yaxes(title="sites")
    return base_layout(fig, title="Site reliability", height=320)
