"""Figures of the Sites page: neural vs unit scatter (Figure 2) and the runner-up histogram."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from components.figures.common import require_columns
from components.theme import CATEGORY_COLORS, base_layout, empty_figure, region_color


def make_site_scatter_figure(
    df: pd.DataFrame | None,
    *,
    site_id: str,
    model: str,
    rank: int | None,
    lim: float | None = None,
    title: str | None = None,
) -> go.Figure:
    """Standardised neural response vs the matched unit's activation over stimuli, coloured by category.

    `lim` fixes both axes to [-lim, lim] (figures shown side by side share one scale; see `scatter_limit`);
    `title` replaces the default "Rank k: r = ..." (the Unit page names the site instead).
    """
    if df is None:
        return empty_figure("This unit's activations were not gathered (run the gather pass)")
    require_columns(df, ("stimulus_id", "category", "object", "neural", "unit"), "site scatter")
    # plain NumPy arrays and direct layout items: pandas inputs and update_* calls cost most of this
    # figure's time (profiled for the Compare page, which draws two of them per callback)
    categories = df["category"].astype(str).to_numpy()
    x, y = df["neural"].to_numpy(np.float64), df["unit"].to_numpy(np.float64)
    custom = np.stack([df["stimulus_id"].astype(str).to_numpy(), df["object"].astype(str).to_numpy()], axis=1)
    traces = []
    for i, category in enumerate(np.unique(categories)):
        mask = categories == category
        traces.append(
            go.Scattergl(
                x=x[mask],
                y=y[mask],
                mode="markers",
                name=str(category),
                marker={"color": CATEGORY_COLORS[i % len(CATEGORY_COLORS)], "size": 5, "opacity": 0.7},
                customdata=custom[mask],
                hovertemplate="%{customdata[1]}<br>neural %{x:.2f}, unit %{y:.2f}<extra>%{fullData.name}</extra>",
            )
        )
    lim = lim or scatter_limit(df)
    traces.append(
        go.Scatter(
            x=[-lim, lim],
            y=[-lim, lim],
            mode="lines",
            showlegend=False,
            hoverinfo="skip",
            line={"color": "#999", "dash": "dot", "width": 1},
        )
    )
    fig = go.Figure(data=traces)
    a = df.attrs
    unit = f"{a.get('layer', '?')} [c{a.get('channel')}, y{a.get('y')}, x{a.get('x')}]"
    # square and equal on both axes; "domain" shrinks the plot instead of widening the x range
    fig.layout["xaxis"] = {
        "title": {"text": f"{site_id} (z-scored response)"},
        "range": [-lim, lim],
        "zeroline": False,
        "constrain": "domain",
    }
    fig.layout["yaxis"] = {
        "title": {"text": f"{model}<br>{unit} (z-scored)"},
        "range": [-lim, lim],
        "scaleanchor": "x",
        "zeroline": False,
        "constrain": "domain",
    }
    fig.layout["legend"] = {"title": {"text": "category"}}
    title = title or f"Rank {rank}: r = {a.get('r', float('nan')):.3f} over {len(df)} stimuli"
    base_layout(fig, title=title, height=480)
    fig.layout.margin["l"] = 80  # room for the two-line unit label
    return fig


def scatter_limit(*frames: pd.DataFrame | None) -> float:
    """The half-range that shows every point of every frame (z-scores), with a 5% margin."""
    values = [np.abs(np.concatenate([f["neural"], f["unit"]])) for f in frames if f is not None and len(f)]
    if not values:
        return 1.0
    top = float(np.nanmax(np.concatenate(values)))
    return top * 1.05 if np.isfinite(top) and top > 0 else 1.0


def make_runnerup_histogram_figure(matches: pd.DataFrame, *, region: str) -> go.Figure:
    """Distribution of r over the site's top-K units, with the best marked (Figure 7 for one site)."""
    require_columns(matches, ("rank", "r"), "runner-up histogram")
    if matches.empty:
        return empty_figure("No matches for this site")
    best = float(matches.loc[matches["rank"].idxmin(), "r"])
    fig = go.Figure(
        go.Histogram(x=matches["r"], marker_color=region_color(region), opacity=0.8, nbinsx=30, name="top-K units")
    )
    fig.add_vline(x=best, line={"color": "#000", "dash": "dash"}, annotation_text=f"best {best:.3f}")
    fig.update_xaxes(title=f"r of the top {len(matches)} units")
    fig.update_yaxes(title="units")
    gap = best - float(matches.sort_values("rank")["r"].iloc[1]) if len(matches) > 1 else float("nan")
    return base_layout(fig, title=f"Runner-up units (gap to rank 2: {gap:.3f})", height=300)


def _has_map(row: pd.Series) -> bool:
    """Whether a receptive-field row holds a map (a method may store only its centre and size)."""
    value, size = row["map"], row["map_size"]
    if not hasattr(value, "__len__") or isinstance(value, str) or pd.isna(size):
        return False
    return len(value) == int(size) ** 2


def _circle(x: float, y: float, diameter: float, n: int = 64):
    t = np.linspace(0, 2 * np.pi, n)
    return x + diameter / 2 * np.cos(t), y + diameter / 2 * np.sin(t)


def make_unit_rf_figure(
    units: pd.DataFrame,
    site: pd.Series | None,
    *,
    site_id: str,
    model: str,
    title: str | None = None,
    command: str = "",
) -> go.Figure:
    """Figure S2: the best unit's receptive field (mapping and/or gradient) against the site's mapped field.

    `title` replaces the default (the Unit page shows any unit, not only a site's best); `command`: what
    computes the fields, shown when there are none."""
    require_columns(units, ("method", "x_deg", "y_deg", "size_deg", "map", "map_size", "extent_deg"), "unit RF")
    if units.empty:
        return empty_figure("Receptive fields of model units not computed yet" + (f" ({command})" if command else ""))
    shown = units.set_index("method")
    # the map drawn underneath: the mapping method's, else any method's; a method may store only its centre
    with_map = [m for m in ("mapping", *shown.index) if m in shown.index and _has_map(shown.loc[m])]
    base = shown.loc[with_map[0]] if with_map else shown.iloc[0]
    extent = float(base["extent_deg"]) if pd.notna(base["extent_deg"]) else 8.0
    fig = go.Figure()
    if with_map:
        size = int(base["map_size"])
        coords = np.linspace(-extent / 2, extent / 2, size)
        z = np.asarray(base["map"], dtype=float).reshape(size, size)  # image-like: row 0 = top
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=coords,
                y=coords[::-1],
                colorscale="Greys",
                showscale=False,
                hovertemplate="x %{x:.1f}°, y %{y:.1f}°<extra></extra>",
            )
        )
    styles = {"mapping": ("unit (mapping)", "#009E73", "solid"), "gradient": ("unit (gradient)", "#CC79A7", "dash")}
    for method, row in shown.iterrows():
        if pd.isna(row["x_deg"]) or pd.isna(row["size_deg"]):
            continue
        label, color, dash = styles.get(method, (method, "#333", "dot"))
        cx, cy = _circle(row["x_deg"], row["y_deg"], row["size_deg"])
        fig.add_trace(go.Scatter(x=cx, y=cy, mode="lines", name=label, line={"color": color, "dash": dash, "width": 2}))
    if site is not None and pd.notna(site.get("rf_x_deg")) and pd.notna(site.get("rf_size_deg")):
        cx, cy = _circle(site["rf_x_deg"], site["rf_y_deg"], site["rf_size_deg"])
        fig.add_trace(
            go.Scatter(
                x=cx,
                y=cy,
                mode="lines",
                name=f"{site_id} (mapped)",
                line={"color": region_color(str(site.get("region", "V4"))), "width": 3},
            )
        )
    fig.update_xaxes(title="x (deg)", range=[-extent / 2, extent / 2])
    fig.update_yaxes(title="y (deg)", range=[-extent / 2, extent / 2], scaleanchor="x")
    fig.update_layout(legend={"orientation": "h", "y": -0.2})
    distance = base.get("distance_deg")
    title = title or f"{model}'s best unit" + (f": {distance:.2f}° from the site's field" if pd.notna(distance) else "")
    return base_layout(fig, title=title, height=420)
