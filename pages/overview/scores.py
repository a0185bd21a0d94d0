"""The Overview's across-model score cards: the leaderboard, V4 vs IT (Figure 3), score vs ImageNet
accuracy (Figure 4) and vs size (S3), and every layer vs the best layer (S8)."""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html

from backend import data
from components.exports import export_menu, register_export
from components.figures.overview import (
    METRIC_NOTES,
    leaderboard,
    make_layer_vs_all_figure,
    make_region_scatter_figure,
    make_score_vs_figure,
)
from components.theme import GRAPH_CONFIG
from pages.overview.common import SIZE_AXES, ResultsView, ids, scores_view

_F3 = {"function": "params.value == null ? '' : d3.format('.3f')(params.value)"}
_F1 = {"function": "params.value == null ? '' : d3.format('.1f')(params.value)"}  # ImageNet top-1, in %


def leaderboard_columns(regions: list[str]) -> list[dict]:
    columns = [{"field": "model", "minWidth": 220, "pinned": "left"}, {"field": "kind", "maxWidth": 110}]
    for r in regions:
        columns += [
            {"field": r, "headerName": f"{r}", "valueFormatter": _F3, "sort": "desc" if r == regions[-1] else None},
            {"field": f"{r}_ci", "headerName": f"{r} 95% CI", "sortable": False, "tooltipField": f"{r}_scheme"},
            {"field": f"{r}_null", "headerName": f"{r} null median", "valueFormatter": _F3},
        ]
    columns.append({"field": "imagenet_top1", "headerName": "ImageNet top-1 (%)", "valueFormatter": _F1})
    return columns


def leaderboard_grid(dataset: str) -> list:
    return [
        html.Div(export_menu("overview-leaderboard", "Export table", data_only=True), className="clearfix mb-1"),
        dag.AgGrid(
            id=ids("leaderboard"),
            columnDefs=leaderboard_columns(data.regions(dataset)),
            rowData=[],
            className="ag-theme-alpine grid-fit-rows",
            defaultColDef={
                "sortable": True,
                "resizable": True,
                "flex": 1,
                "minWidth": 100,
                "wrapHeaderText": True,
                "autoHeaderHeight": True,
            },
            dashGridOptions={"domLayout": "autoHeight"},
            style={"height": None},
        ),
    ]


def score_figure_rows(view: ResultsView) -> list:
    """Figures 3 and 4, then S3 (with its size axis) and S8 (with its region)."""
    regions = data.regions(view.dataset)
    return [
        dbc.Row(
            [
                dbc.Col(
                    [
                        html.Div(export_menu("overview-regions"), className="clearfix"),
                        dcc.Loading(dcc.Graph(id=ids("regions"), config=GRAPH_CONFIG)),
                    ],
                    lg=6,
                ),
                dbc.Col(
                    [
                        html.Div(export_menu("overview-accuracy"), className="clearfix"),
                        dcc.Loading(dcc.Graph(id=ids("accuracy"), config=GRAPH_CONFIG)),
                    ],
                    lg=6,
                ),
            ],
            className="mt-3",
        ),
        dbc.Row(
            [
                dbc.Col(
                    [
                        dbc.RadioItems(
                            id=ids("size-axis"),
                            value=view.size,
                            inline=True,
                            options=[{"label": label, "value": v} for v, label in SIZE_AXES.items()],
                        ),
                        dcc.Loading(dcc.Graph(id=ids("size"), config=GRAPH_CONFIG)),
                    ],
                    lg=6,
                ),
                dbc.Col(
                    [
                        dbc.RadioItems(
                            id=ids("region"),
                            value=view.region,
                            inline=True,
                            options=[{"label": r, "value": r} for r in regions],
                        ),
                        dcc.Loading(dcc.Graph(id=ids("layers"), config=GRAPH_CONFIG)),
                    ],
                    lg=6,
                ),
            ],
            className="mt-3",
        ),
    ]


# ---------------------------------------------------------------- cards: (figure, frame) of a valid view
def leaderboard_table(dataset: str, scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    return leaderboard(scores, metric, data.regions(dataset))


def regions_card(scores: pd.DataFrame, metric: str):
    return make_region_scatter_figure(scores, metric), scores[scores["metric"] == metric]


def accuracy_card(scores: pd.DataFrame, metric: str):
    return make_score_vs_figure(scores, metric, "imagenet_top1"), scores[scores["metric"] == metric]


@dash.callback(
    Output(ids("leaderboard"), "rowData"),
    Output(ids("regions"), "figure"),
    Output(ids("accuracy"), "figure"),
    Input(ids("metric"), "value"),
    State(ids("dataset"), "value"),
)
def update_metric(metric, dataset):
    scores = data.scores(dataset)
    table = leaderboard_table(dataset, scores, metric)
    rows = table.astype(object).where(table.notna(), None).to_dict("records")
    return rows, regions_card(scores, metric)[0], accuracy_card(scores, metric)[0]


@dash.callback(
    Output(ids("size"), "figure"),
    Input(ids("size-axis"), "value"),
    Input(ids("metric"), "value"),
    State(ids("dataset"), "value"),
)
def update_size(axis, metric, dataset):
    return make_score_vs_figure(data.scores(dataset), metric, axis)


@dash.callback(Output(ids("layers"), "figure"), Input(ids("region"), "value"), State(ids("dataset"), "value"))
def update_layers(region, dataset):
    return make_layer_vs_all_figure(data.scores(dataset), region)


@dash.callback(Output(ids("metric-note"), "children"), Input(ids("metric"), "value"))
def update_metric_note(metric):
    return METRIC_NOTES.get(metric, "")


@register_export("overview-regions", "Figure 3: V4 vs IT across models", ("dataset", "metric"))
def export_regions(dataset, metric):
    _, scores, metric = scores_view(dataset, metric)
    return regions_card(scores, metric)


@register_export("overview-accuracy", "Figure 4: score vs ImageNet top-1", ("dataset", "metric"))
def export_accuracy(dataset, metric):
    _, scores, metric = scores_view(dataset, metric)
    return accuracy_card(scores, metric)


@register_export(
    "overview-leaderboard", "The model leaderboard for one score (the table)", ("dataset", "metric"), data_only=True
)
def export_leaderboard(dataset, metric):
    return None, leaderboard_table(*scores_view(dataset, metric))
