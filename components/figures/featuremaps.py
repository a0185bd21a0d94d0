"""Figure 8 / S11 (sites per feature map and position) and S13 (validated feature maps)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.figures.common import require_columns
from components.theme import OTHER_COLOR, base_layout, empty_figure, region_color

THRESHOLDS = (0.3, 0.4, 0.5, 0.6)


def make_featuremap_counts_figure(
    topk: pd.DataFrame, *, channels: int, region: str, layer: str, top: int = 1
) -> go.Figure:
    """Sites whose best unit (top=1) or top-`top` units lie in each feature map of the layer."""
    require_columns(topk, ("site_id", "rank", "channel"), "feature-map counts")
    sub = topk[topk["rank"] <= top]
    if sub.empty:
        return empty_figure(f"No {region} matches in this layer")
    counts = sub["channel"].value_counts().reindex(range(channels), fill_value=0)
    fig = go.Figure(
        go.Bar(
            x=np.arange(channels),
            y=counts.to_numpy(),
            marker_color=region_color(region),
            hovertemplate="feature map %{x}: %{y}<extra></extra>",
        )
    )
    fig.update_xaxes(title="feature map (channel)")
    fig.update_yaxes(title="sites" if top == 1 else f"units in sites' top {top}")
    label = "best unit" if top == 1 else f"top-{top} units"
    return base_layout(fig, title=f"{layer}: feature maps of each {region} site's {label}", height=320)


def make_position_figure(topk: pd.DataFrame, *, height: int, width: int, region: str, top: int = 1) -> go.Figure:
    """Counts per x and per y position of the sites' best (or top-k) units (Figure 8 right, S11)."""
    require_columns(topk, ("rank", "y", "x"), "position counts")
    sub = topk[topk["rank"] <= top]
    if sub.empty:
        return empty_figure("No matches")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("x position", "y position"))
    fig.add_trace(
        go.Bar(
            x=np.arange(width),
            y=sub["x"].value_counts().reindex(range(width), fill_value=0),
            marker_color=region_color(region),
            name="x",
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Bar(
            x=np.arange(height),
            y=sub["y"].value_counts().reindex(range(height), fill_value=0),
            marker_color=region_color(region),
            name="y",
        ),
        1,
        2,
    )
    fig.update_layout(showlegend=False)
    fig.update_yaxes(title="count", row=1, col=1)
    for note in fig.layout.annotations:  # the subplot titles: the body font's size, not plotly's 16 px
        note.font = {"size": 13}
    base_layout(fig, title="Where in the feature map the matches lie", height=320)
    # the subplot titles sit just above the plot area, inside the top margin: make room for them under the title
    fig.layout.margin.t += SUBPLOT_TITLE_PX
    return fig


SUBPLOT_TITLE_PX = 24


def validated_featuremaps(best: pd.DataFrame, *, channels: int, thresholds=THRESHOLDS) -> pd.DataFrame:
    """Per feature map: its best-matched site and r (and where that unit is, best_y/best_x, when `best` has
    y and x), and how many sites exceed each threshold."""
    require_columns(best, ("site_id", "channel", "r"), "validated feature maps")
    out = pd.DataFrame({"channel": np.arange(channels)})
    where = [c for c in ("y", "x") if c in best.columns]  # the best site's unit in this feature map
    if best.empty:
        out["best_site"], out["best_r"] = None, np.nan
        for c in where:
            out[f"best_{c}"] = pd.array([pd.NA] * channels, dtype="Int64")
    else:
        top = best.loc[best.groupby("channel")["r"].idxmax(), ["channel", "site_id", "r", *where]]
        top = top.rename(columns={"site_id": "best_site", "r": "best_r", **{c: f"best_{c}" for c in where}})
        out = out.merge(top, on="channel", how="left")
        for c in where:
            out[f"best_{c}"] = out[f"best_{c}"].astype("Int64")
    for t in thresholds:
        counts = best[best["r"] > t].groupby("channel").size()
        out[f"sites_r>{t}"] = counts.reindex(out["channel"], fill_value=0).to_numpy()
    out["best_site"] = out["best_site"].astype(object).where(out["best_site"].notna(), None)
    return out


def make_validated_figure(table: pd.DataFrame, *, region: str, layer: str, thresholds=THRESHOLDS) -> go.Figure:
    """Figure S13: feature maps sorted by their best site's r; which are validated at each threshold."""
    require_columns(table, ("channel", "best_r"), "validated figure")
    if table["best_r"].isna().all():
        return empty_figure("No feature-map matches for this layer")
    t = table.sort_values("best_r", ascending=False).reset_index(drop=True)
    fig = go.Figure(
        go.Bar(
            x=np.arange(len(t)),
            y=t["best_r"],
            customdata=t[["channel", "best_site"]].to_numpy(),
            marker_color=[region_color(region) if r > thresholds[0] else OTHER_COLOR for r in t["best_r"].fillna(-1)],
            hovertemplate="feature map %{customdata[0]}<br>best site %{customdata[1]}<br>r %{y:.3f}<extra></extra>",
        )
    )
    # threshold lines as plain layout shapes and annotations: add_hline costs ~10 ms a line (profiled)
    counts = [int((t["best_r"] > thr).sum()) for thr in thresholds]
    fig.layout["shapes"] = [
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "yref": "y",
            "y0": thr,
            "y1": thr,
            "line": {"dash": "dot", "color": "#555", "width": 1},
        }
        for thr in thresholds
    ]
    fig.layout["annotations"] = [
        {
            "text": f"r > {thr}: {n}/{len(t)} validated",
            "xref": "paper",
            "x": 1,
            "xanchor": "right",
            "yref": "y",
            "y": thr,
            "yanchor": "bottom",
            "showarrow": False,
        }
        for thr, n in zip(thresholds, counts, strict=True)
    ]
    fig.layout["xaxis"] = {"title": {"text": "feature maps, sorted by their best-matched site"}}
    fig.layout["yaxis"] = {"title": {"text": f"best {region} site r"}}
    return base_layout(fig, title=f"{layer}: validated vs unvalidated feature maps", height=380)
