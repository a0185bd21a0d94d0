"""Figures of the Decoding page: accuracies per condition (Figure 5) and confusion matrices (S5, S6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from components.figures.common import require_columns
from components.theme import OTHER_COLOR, base_layout, empty_figure, region_color

CONDITIONS = {
    ("matched", "matched"): "(i) matched → matched",
    ("matched", "neural"): "(ii) matched → neural",
    ("neural", "matched"): "(iii) neural → matched",
    ("neural", "neural"): "neural → neural",
    ("random", "random"): "random units (baseline)",
    ("pixels", "pixels"): "pixels",
}


def condition_label(train: str, test: str) -> str:
    return CONDITIONS.get((train, test), f"{train} → {test}")


def make_decoding_figure(runs: pd.DataFrame, *, region: str, variant: str, command: str = "") -> go.Figure:
    """Figure 5: category decoding accuracy per condition. `command`: what computes decoding, shown when
    the model has none at all."""
    require_columns(
        runs, ("region", "train_population", "test_population", "variant", "accuracy", "chance"), "decoding figure"
    )
    if runs.empty:
        return empty_figure("Decoding is not computed for this model yet" + (f" ({command})" if command else ""))
    sub = runs[(runs["region"] == region) & (runs["variant"] == variant)]
    if sub.empty:
        return empty_figure(
            f"Decoding ({variant.replace('_', '-')}) is not computed for {region}; computed: "
            + ", ".join(
                sorted({f"{r} {v.replace('_', '-')}" for r, v in zip(runs["region"], runs["variant"], strict=True)})
            )
        )
    stats = sub.groupby(["train_population", "test_population"])["accuracy"].agg(["mean", "std", "size"])
    stats = stats.reset_index()
    order = {k: i for i, k in enumerate(CONDITIONS)}
    stats["order"] = [
        order.get((a, b), 99) for a, b in zip(stats["train_population"], stats["test_population"], strict=True)
    ]
    stats = stats.sort_values("order")
    labels = [condition_label(a, b) for a, b in zip(stats["train_population"], stats["test_population"], strict=True)]
    colors = [OTHER_COLOR if a in ("random", "pixels") else region_color(region) for a in stats["train_population"]]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=stats["mean"],
            marker_color=colors,
            error_y={"type": "data", "array": stats["std"].fillna(0).to_numpy()},
            customdata=stats["size"],
            hovertemplate="%{x}<br>accuracy %{y:.3f} (%{customdata} runs)<extra></extra>",
        )
    )
    chance = float(sub["chance"].iloc[0])
    fig.add_hline(y=chance, line={"dash": "dash", "color": "#000"}, annotation_text=f"chance {chance:.3f}")
    fig.update_yaxes(title="category decoding accuracy", range=[0, 1])
    return base_layout(
        fig, title=f"{region}: decoding the category ({variant.replace('_', '-')}; mean ± SD over runs)", height=400
    )


def make_confusion_figure(conf: pd.DataFrame, *, train: str, test: str, variant: str, command: str = "") -> go.Figure:
    """Figures S5, S6: the confusions of one condition. `command`: what computes decoding, shown when the
    region has no confusions at all."""
    require_columns(
        conf,
        ("train_population", "test_population", "variant", "true_category", "predicted_category", "fraction"),
        "confusion figure",
    )
    if conf.empty:
        return empty_figure("Decoding is not computed for this model yet" + (f" ({command})" if command else ""))
    sub = conf[(conf["train_population"] == train) & (conf["test_population"] == test) & (conf["variant"] == variant)]
    if sub.empty:
        return empty_figure(f"No confusion matrix for {condition_label(train, test)} ({variant.replace('_', '-')})")
    wide = sub.pivot(index="true_category", columns="predicted_category", values="fraction").fillna(0)
    cats = sorted(set(wide.index) | set(wide.columns))
    wide = wide.reindex(index=cats, columns=cats, fill_value=0)
    fig = go.Figure(
        go.Heatmap(
            z=wide.to_numpy(),
            x=cats,
            y=cats,
            colorscale="Blues",
            zmin=0,
            zmax=1,
            text=np.round(wide.to_numpy(), 2),
            texttemplate="%{text}",
            hovertemplate="true %{y}, predicted %{x}: %{z:.2f}<extra></extra>",
        )
    )
    fig.update_xaxes(title="predicted category")
    fig.update_yaxes(title="true category", autorange="reversed")
    return base_layout(fig, title=f"Confusions: {condition_label(train, test)}", height=460)
