"""The Overview's per-model cards -- the selection curve (Figure S1), single unit vs PLS (S4) -- and the
paired comparisons between models."""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from backend import data, params
from backend.commands import analyze_command
from components import empty
from components.exports import export_menu, register_export
from components.figures.overview import make_pls_comparison_figure, make_selection_curve_figure
from components.theme import GRAPH_CONFIG, GRID_COLUMNS, GRID_PAGINATION
from pages.overview.common import ResultsView, ids

_F3 = {"function": "params.value == null ? '' : d3.format('.3f')(params.value)"}
_P = {"function": "params.value == null ? '' : (params.value < 0.001 ? '< 0.001' : d3.format('.3f')(params.value))"}
COMPARISON_COLUMNS = [
    {"field": "region", "headerName": "Region", "maxWidth": 90},
    {
        "field": "metric",
        "headerName": "Score",
        "valueFormatter": {
            "function": "params.value == 'heldout_split_half' ? 'held-out r (primary)' : "
            "(params.value == 'neural_correlation' ? 'in-sample r' : params.value)"
        },
    },
    {"field": "model_a", "headerName": "Model A", "minWidth": 180},
    {"field": "model_b", "headerName": "Model B", "minWidth": 180},
    {"field": "difference", "headerName": "Median A - B", "valueFormatter": _F3, "tooltipField": "ci_scheme"},
    {"field": "ci", "headerName": "95% CI", "sortable": False, "tooltipField": "ci_scheme"},
    {"field": "p_value", "headerName": "p", "valueFormatter": _P, "tooltipField": "test"},
    {"field": "p_holm", "headerName": "p (Holm)", "valueFormatter": _P},
]
COMPARISONS_NOTE = (
    "Held-out r (split-half) is the primary comparison; the in-sample r favours models with more "
    "units. Difference: median over sites of A - B; interval and p from a bootstrap that resamples "
    "sites (by animal/array) and stimuli (by object) together; p (Holm) is adjusted over every pair "
    "of models of the region."
)


def model_rows(view: ResultsView) -> list:
    """The model picker and its two figures (S1, S4)."""
    return [
        dbc.Row(
            [
                dbc.Col(
                    [
                        dbc.Label("Model"),
                        dcc.Dropdown(
                            id=ids("model"),
                            value=view.model,
                            clearable=False,
                            options=[{"label": m, "value": m} for m in view.models],
                        ),
                    ],
                    md=4,
                ),
            ],
            className="mt-3",
        ),
        dbc.Row(
            [
                dbc.Col(dcc.Loading(dcc.Graph(id=ids("selection"), config=GRAPH_CONFIG)), lg=6),
                dbc.Col(dcc.Loading(dcc.Graph(id=ids("pls"), config=GRAPH_CONFIG)), lg=6),
            ]
        ),
    ]


def comparisons_section(dataset: str) -> list:
    none_yet = data.model_comparisons(dataset).empty
    return [
        html.Div(
            [export_menu("overview-comparisons", "Export table", data_only=True), html.H5("Paired comparisons")],
            className="clearfix mt-3",
        ),
        empty.not_computed(
            "Paired comparisons between models", analyze_command(dataset, "MODEL"), after="for a second model"
        )
        if none_yet
        else None,
        html.P(COMPARISONS_NOTE, className="small text-muted"),
        dag.AgGrid(
            id=ids("comparisons"),
            rowData=[],
            className="ag-theme-alpine",
            columnDefs=COMPARISON_COLUMNS,
            defaultColDef=GRID_COLUMNS,
            dashGridOptions=GRID_PAGINATION,
            style={"height": 360, "display": "none" if none_yet else "block"},
        ),
    ]


@dash.callback(
    Output(ids("selection"), "figure"),
    Output(ids("pls"), "figure"),
    Output(ids("comparisons"), "rowData"),
    Input(ids("model"), "value"),
    State(ids("dataset"), "value"),
)
def update_model(model, dataset):
    single = data.best_matches(dataset, model)[["site_id", "region", "r"]].rename(columns={"r": "value"})
    pls = data.site_metric(dataset, "pls_r")
    comparisons = comparison_rows(data.model_comparisons(dataset))
    return (
        make_selection_curve_figure(data.selection_curve(dataset), model, analyze_command(dataset, model, "crossval")),
        make_pls_comparison_figure(
            single, pls[pls["model"] == model].drop(columns="model"), model, analyze_command(dataset, model, "pls")
        ),
        comparisons.astype(object).where(comparisons.notna(), None).to_dict("records"),
    )


def comparison_rows(comparisons):
    """The comparisons table's rows: the interval as one readable column."""
    if comparisons.empty:
        return comparisons
    out = comparisons.copy()
    out["ci"] = [
        f"[{lo:.3f}, {hi:.3f}]" if lo == lo and hi == hi else ""
        for lo, hi in zip(out["ci_low"], out["ci_high"], strict=True)
    ]
    return out


@register_export("overview-comparisons", "Paired comparisons between models (the table)", ("dataset",), data_only=True)
def export_comparisons(dataset):
    return None, data.model_comparisons(params.require_dataset(dataset))
