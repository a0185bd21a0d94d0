"""Figures of the Overview page: the model leaderboard and the paper's across-model figures
(3: V4 vs IT, 4: vs ImageNet accuracy, S3: vs size, S8: all layers vs best layer, S1: selection curve,
S4: single-unit vs linear predictivity)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from backend.commands import analyze_command
from components.figures.common import require_columns
from components.theme import OTHER_COLOR, REGION_COLORS, base_layout, empty_figure, region_color

METRICS = {
    "heldout_split_half": "held-out (split-half)",
    "neural_correlation": "in-sample (the paper's)",
    "heldout_n2n": "held-out (Brain-Score neuron-to-neuron, 90/10)",
    "heldout_ceiled": "held-out, corrected for attenuation",
    "brainscore_ceiled": "Brain-Score ceiled (r\u00b2 / consistency)",
    "one_to_one": "one-to-one assignment (in-sample)",
}
# Axis titles: a few words that fit beside a half-width figure; the full label goes in the figure title.
METRIC_SHORT = {
    "neural_correlation": "in-sample r",
    "heldout_split_half": "held-out r",
    "heldout_n2n": "held-out r (n2n)",
    "heldout_ceiled": "ceiled held-out r",
    "brainscore_ceiled": "Brain-Score ceiled",
    "one_to_one": "one-to-one r",
}
#: What each score's unit selection saw and what it is scored on (docs/metrics.md, "What each score's selection
#: saw"): shown under the score selector, so a leaderboard never passes in-sample evidence off as held-out.
METRIC_NOTES = {
    "neural_correlation": "Each site's best unit chosen and scored on all stimuli: in-sample, biased upwards, more so "
    "for models with more units.",
    "heldout_split_half": "Each site's unit chosen over all units on folds 0-4 of the stimuli only, scored on folds "
    "5-9, which the selection never saw: 0 for a model without signal.",
    "heldout_n2n": "Brain-Score's neuron-to-neuron proportions: unit chosen over all units on folds 0-8 (90%), "
    "scored on fold 9 (10%).",
    "heldout_ceiled": "The split-half held-out r of each site divided by the square root of its reliability "
    "(correction for attenuation), median over sites.",
    "brainscore_ceiled": "Brain-Score's convention: the held-out neuron-to-neuron score squared over the region's "
    "consistency (median split-half reliability); sign kept.",
    "one_to_one": "Each unit serves at most one site (Hungarian assignment among the sites' top-K units, chosen on "
    "all stimuli): in-sample.",
}
NULL_NOTE = (
    "Null median: the best r this model's own units reach against responses permuted over the stimuli "
    "(its chance level for the in-sample score). The random control (noise units that ignore the image) "
    "is a lower, ideal-noise chance level: real units are sparse and heavy-tailed, so their null runs "
    "higher. Held-out scores have 0 as their chance level."
)
INTERVAL_NOTE = (
    "95% intervals resample sites (by animal/array where recorded) and stimuli (by object) together, "
    "each site's unit held fixed; hover an interval for its exact scheme."
)


def metric_short(metric: str) -> str:
    """The metric's axis title: its short name (an unknown metric keeps its id)."""
    return METRIC_SHORT.get(metric, metric)


SCORE_COLUMNS = ("model", "region", "metric", "value", "ci_low", "ci_high", "kind")


def available_metrics(scores: pd.DataFrame) -> list[str]:
    present = set(scores["metric"]) if len(scores) else set()
    return [m for m in METRICS if m in present]


def leaderboard(scores: pd.DataFrame, metric: str, regions: list[str]) -> pd.DataFrame:
    """One row per model: the metric per region with its interval, the null median, ImageNet top-1."""
    require_columns(scores, SCORE_COLUMNS, "leaderboard")
    rows = []
    for model, group in scores.groupby("model", sort=False):
        g = group.set_index(["metric", "region"])
        row = {"model": model, "kind": group["kind"].iloc[0], "imagenet_top1": group["imagenet_top1"].iloc[0]}
        for region in regions:
            if (metric, region) in g.index:
                item = g.loc[(metric, region)]
                row[region] = float(item["value"])
                lo, hi = item["ci_low"], item["ci_high"]
                row[f"{region}_ci"] = f"[{lo:.3f}, {hi:.3f}]" if pd.notna(lo) and pd.notna(hi) else ""
                scheme = item.get("ci_scheme") if hasattr(item, "get") else None
                row[f"{region}_scheme"] = scheme if isinstance(scheme, str) else ""
            else:
                row[region], row[f"{region}_ci"], row[f"{region}_scheme"] = None, "", ""
            null = ("null_median", region)
            row[f"{region}_null"] = float(g.loc[null, "value"]) if null in g.index else None
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    key = regions[-1] if regions else "model"
    return out.sort_values(key, ascending=False, na_position="last").reset_index(drop=True)


def _errors(frame: pd.DataFrame) -> dict:
    if frame["ci_low"].isna().all():
        return {}
    return {
        "type": "data",
        "symmetric": False,
        "array": (frame["ci_high"] - frame["value"]).to_numpy(),
        "arrayminus": (frame["value"] - frame["ci_low"]).to_numpy(),
        "thickness": 1,
    }


def make_region_scatter_figure(
    scores: pd.DataFrame, metric: str, x_region: str = "V4", y_region: str = "IT"
) -> go.Figure:
    """Figure 3: each model's score in one region against the other."""
    require_columns(scores, SCORE_COLUMNS, "region scatter")
    sub = scores[scores["metric"] == metric]
    wide = sub.pivot_table(index=["model", "kind"], columns="region", values=["value", "ci_low", "ci_high"])
    if wide.empty or x_region not in wide["value"] or y_region not in wide["value"]:
        return empty_figure(f"No {METRICS.get(metric, metric)} scores for both {x_region} and {y_region}")
    fig = go.Figure()
    for is_control, label, symbol in ((False, "models", "circle"), (True, "controls", "x")):
        part = wide[(wide.index.get_level_values("kind") == "control") == is_control]
        if part.empty:
            continue
        x, y = part["value"][x_region], part["value"][y_region]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="markers+text",
                name=label,
                text=part.index.get_level_values("model"),
                textposition="top center",
                marker={"size": 11, "symbol": symbol, "color": OTHER_COLOR if is_control else "#333"},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": part["ci_high"][x_region] - x,
                    "arrayminus": x - part["ci_low"][x_region],
                }
                if "ci_high" in part
                else None,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": part["ci_high"][y_region] - y,
                    "arrayminus": y - part["ci_low"][y_region],
                }
                if "ci_high" in part
                else None,
            )
        )
    fig.update_xaxes(title=f"{x_region}: {metric_short(metric)}")
    fig.update_yaxes(title=f"{y_region}: {metric_short(metric)}")
    return base_layout(
        fig,
        title=f"{x_region} vs {y_region} across models (Figure 3); score: {METRICS.get(metric, metric)}",
        height=420,
    )


def make_score_vs_figure(scores: pd.DataFrame, metric: str, x: str) -> go.Figure:
    """Figure 4 (x = imagenet_top1 / imagenet_top5) and S3 (x = parameters / total_units)."""
    require_columns(scores, (*SCORE_COLUMNS, x), "score vs model property")
    sub = scores[(scores["metric"] == metric) & scores[x].notna()]
    labels = {
        "imagenet_top1": "ImageNet top-1 (%)",
        "imagenet_top5": "ImageNet top-5 (%)",
        "parameters": "parameters",
        "total_units": "units (all exposed layers)",
    }
    if sub.empty:
        return empty_figure(f"No model with a known {labels.get(x, x)}")
    fig = go.Figure()
    for region, group in sub.groupby("region", sort=False):
        group = group.sort_values(x)
        fig.add_trace(
            go.Scatter(
                x=group[x],
                y=group["value"],
                mode="markers+lines",
                name=region,
                text=group["model"],
                marker={"color": region_color(region), "size": 10},
                line={"width": 1, "dash": "dot"},
                error_y=_errors(group) or None,
                hovertemplate="%{text}<br>%{x}<br>score %{y:.3f}<extra>" + region + "</extra>",
            )
        )
    fig.update_xaxes(title=labels.get(x, x), type="log" if x in ("parameters", "total_units") else "linear")
    fig.update_yaxes(title=metric_short(metric))
    return base_layout(fig, title=f"Score vs {labels.get(x, x)}; score: {METRICS.get(metric, metric)}", height=380)


def make_layer_vs_all_figure(scores: pd.DataFrame, region: str) -> go.Figure:
    """Figure S8: all layers vs the best single layer, per model; controls hatched."""
    require_columns(scores, SCORE_COLUMNS, "all layers vs best layer")
    sub = scores[(scores["region"] == region) & scores["metric"].isin(["neural_correlation", "best_layer_score"])]
    if sub.empty:
        return empty_figure("No layer scores yet")
    wide = sub.pivot_table(index=["model", "kind"], columns="metric", values="value").reset_index()
    fig = go.Figure()
    for metric, label, opacity in (("neural_correlation", "all layers", 1.0), ("best_layer_score", "best layer", 0.55)):
        if metric not in wide:
            continue
        fig.add_trace(
            go.Bar(
                x=wide["model"],
                y=wide[metric],
                name=label,
                opacity=opacity,
                marker_color=region_color(region),
                marker_pattern_shape=["/" if k == "control" else "" for k in wide["kind"]],
            )
        )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="neural correlation (median best r)")
    return base_layout(fig, title=f"{region}: all layers vs the best layer (controls hatched; Figure S8)", height=380)


def make_selection_curve_figure(curve: pd.DataFrame, model: str, command: str = "") -> go.Figure:
    """Figure S1: held-out neural correlation as the selection set grows. `command`: what computes it."""
    require_columns(curve, ("model", "region", "fraction", "value", "ci_low", "ci_high"), "selection curve")
    sub = curve[curve["model"] == model]
    if sub.empty:
        return empty_figure(
            "The selection curve (Figure S1) is not computed for this model: run "
            + (command or analyze_command(None, None, "crossval"))
        )
    fig = go.Figure()
    for region, group in sub.groupby("region", sort=False):
        fig.add_trace(
            go.Scatter(
                x=group["fraction"],
                y=group["value"],
                mode="lines+markers",
                name=region,
                marker={"color": region_color(region)},
                error_y=_errors(group) or None,
            )
        )
    fig.update_xaxes(title="fraction of stimuli used to select each site's unit", tickformat=".0%")
    fig.update_yaxes(title="held-out neural correlation")
    return base_layout(fig, title=f"{model}: held-out score vs selection-set size (Figure S1)", height=360)


def make_pls_comparison_figure(single: pd.DataFrame, pls: pd.DataFrame, model: str, command: str = "") -> go.Figure:
    """Figure S4: per site, linear predictivity (PLS) against the single best unit's r. `command`: what
    computes it."""
    if pls.empty:
        return empty_figure(
            "Linear predictivity (PLS, Figure S4) is not computed for this model: run "
            + (command or analyze_command(None, None, "pls"))
        )
    merged = single.merge(pls, on=["site_id", "region"], suffixes=("_su", "_pls"))
    fig = go.Figure()
    for region, group in merged.groupby("region", sort=False):
        fig.add_trace(
            go.Scatter(
                x=group["value_su"],
                y=group["value_pls"],
                mode="markers",
                name=region,
                marker={"color": REGION_COLORS.get(region, OTHER_COLOR), "opacity": 0.7},
                text=group["site_id"],
            )
        )
    lim = [float(np.nanmin(merged[["value_su", "value_pls"]])) - 0.05, 1.0]
    fig.add_trace(go.Scatter(x=lim, y=lim, mode="lines", showlegend=False, line={"dash": "dot", "color": "#999"}))
    fig.update_xaxes(title="single best unit r")
    fig.update_yaxes(title="PLS linear predictivity r")
    return base_layout(fig, title=f"{model}: single unit vs linear predictivity (Figure S4)", height=380)
