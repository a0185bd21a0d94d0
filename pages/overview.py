"""Overview: the model leaderboard and the across-model figures, plus what this build holds.

URL: /?dataset=...&metric=neural_correlation&size=parameters&region=IT&model=...
"""

from __future__ import annotations

import json

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from backend import data
from backend.config import get_settings
from backend.data import NotFoundError
from components import empty
from components.exports import export_menu, register_export
from components.figures.overview import (
    INTERVAL_NOTE,
    METRIC_NOTES,
    METRICS,
    NULL_NOTE,
    available_metrics,
    leaderboard,
    make_layer_vs_all_figure,
    make_pls_comparison_figure,
    make_region_scatter_figure,
    make_score_vs_figure,
    make_selection_curve_figure,
)
from components.ids import PageIds
from components.urlstate import query_store, to_query

dash.register_page(__name__, path="/", name="Overview", order=0, title="Unitscope")

ids = PageIds("overview")
GRAPH_CONFIG = {"displaylogo": False}
SIZE_AXES = {"parameters": "parameters", "total_units": "units"}
_F3 = {"function": "params.value == null ? '' : d3.format('.3f')(params.value)"}
_F1 = {"function": "params.value == null ? '' : d3.format('.1f')(params.value)"}  # ImageNet top-1, in %
_P = {"function": "params.value == null ? '' : (params.value < 0.001 ? '< 0.001' : d3.format('.3f')(params.value))"}
COMPARISON_COLUMNS = [
    {"field": "region", "headerName": "Region", "maxWidth": 90},
    {"field": "metric", "headerName": "Score", "valueFormatter": {
        "function": "params.value == 'heldout_split_half' ? 'held-out r (primary)' : "
                    "(params.value == 'neural_correlation' ? 'in-sample r' : params.value)"}},
    {"field": "model_a", "headerName": "Model A", "minWidth": 180},
    {"field": "model_b", "headerName": "Model B", "minWidth": 180},
    {"field": "difference", "headerName": "Median A - B", "valueFormatter": _F3, "tooltipField": "ci_scheme"},
    {"field": "ci", "headerName": "95% CI", "sortable": False, "tooltipField": "ci_scheme"},
    {"field": "p_value", "headerName": "p", "valueFormatter": _P, "tooltipField": "test"},
    {"field": "p_holm", "headerName": "p (Holm)", "valueFormatter": _P},
]


def _intro() -> html.Div:
    return html.Div([
        html.H2("Which single unit behaves like this neuron?"),
        html.P("Unitscope matches every recorded site to the single units of deep networks whose responses "
               "across the stimuli correlate best with it (Arend et al. 2018), and shows the analyses around "
               "those matches.", className="lead"),
    ])


def _dataset_cards(datasets) -> dbc.Row:
    cards = []
    for row in datasets.itertuples():
        cards.append(dbc.Col(dbc.Card([
            dbc.CardHeader([html.Strong(row.title or row.dataset), " ",
                            dbc.Badge("synthetic", color="warning") if row.synthetic else None]),
            dbc.CardBody([
                html.P(row.description, className="small text-muted"),
                html.P(f"{row.n_stimuli} stimuli · {row.n_sites} sites", className="mb-2"),
                dcc.Link("Browse the dataset →", href=f"/dataset?dataset={row.dataset}"),
            ]),
        ], className="h-100"), md=6, lg=4, className="mb-3"))
    return dbc.Row(cards) if cards else dbc.Alert("No dataset yet: the build is still running.", color="info")


def _build_facts(info: dict) -> html.Ul:
    steps = json.loads(info.get("steps_done", "[]"))
    return html.Ul([
        html.Li(["build id ", html.Code(info.get("build_id", "?"))]),
        html.Li(f"published {info.get('published_at', '?')}"),
        html.Li(f"schema version {info.get('schema_version', '?')}"),
        html.Li(f"{len(steps)} steps done: " + ", ".join(steps)),
    ], className="small", id="overview-build")


def layout(dataset=None, metric=None, region=None, model=None, size=None, **_ignored):
    if not data.database_ready():
        return empty.no_database(str(get_settings().db_path))
    datasets = data.datasets()
    info = data.build_info()
    parts = [_intro()]
    if len(datasets):
        try:
            results = _results_section(dataset, metric, region, model, size)
        except NotFoundError as exc:
            results = empty.friendly_error(str(exc))
        parts.append(results)
    parts += [html.H4("Datasets", className="mt-4"), _dataset_cards(datasets),
              html.H4("This build", className="mt-4"), _build_facts(info), *query_store("overview")]
    return html.Div(parts)


def _results_section(dataset, metric, region, model, size=None):
    dataset = data.require_dataset(dataset)
    scores = data.scores(dataset)
    metrics = available_metrics(scores)
    if not metrics:
        if data.matched_models(dataset).empty:
            return empty.not_computed(f"Matching on {dataset}",
                                      f"python -m precompute run --dataset {dataset} --model efficientnet-lite0")
        return empty.not_computed(f"Scores on {dataset}", f"python -m precompute analyze --dataset {dataset} "
                                  "--model efficientnet-lite0")
    if metric in (None, ""):
        metric = metrics[0]
    elif metric not in metrics:
        raise NotFoundError(f"unknown or uncomputed metric {str(metric)[:40]!r}; available: {', '.join(metrics)}")
    if size in (None, ""):
        size = "parameters"
    elif size not in SIZE_AXES:
        raise NotFoundError(f"size must be one of {', '.join(SIZE_AXES)}, got {str(size)[:40]!r}")
    regions = list(dict.fromkeys(data.sites(dataset)["region"]))
    if region in (None, ""):
        region = "IT" if "IT" in regions else regions[0]
    elif region not in regions:
        raise NotFoundError(f"unknown region {str(region)[:40]!r}")
    models = sorted(scores["model"].unique())
    if model in (None, ""):
        model = data.PREFERRED_MODEL if data.PREFERRED_MODEL in models else models[0]
    elif model not in models:
        raise NotFoundError(f"model {str(model)[:60]!r} has no scores on {dataset}")
    columns = [{"field": "model", "minWidth": 220, "pinned": "left"}, {"field": "kind", "maxWidth": 110}]
    for r in regions:
        columns += [{"field": r, "headerName": f"{r}", "valueFormatter": _F3, "sort": "desc" if r == regions[-1]
                     else None},
                    {"field": f"{r}_ci", "headerName": f"{r} 95% CI", "sortable": False,
                     "tooltipField": f"{r}_scheme"},
                    {"field": f"{r}_null", "headerName": f"{r} null median", "valueFormatter": _F3}]
    columns.append({"field": "imagenet_top1", "headerName": "ImageNet top-1 (%)", "valueFormatter": _F1})
    return html.Div([
        html.H4("Models", className="mt-2"),
        dbc.Row([
            dbc.Col([dbc.Label("Dataset"), dcc.Dropdown(
                id=ids("dataset"), value=dataset, clearable=False,
                options=[{"label": t or d, "value": d} for d, t in data.datasets()[["dataset", "title"]]
                         .itertuples(index=False)])], md=3),
            dbc.Col([dbc.Label("Score"), dbc.RadioItems(
                id=ids("metric"), value=metric, inline=True,
                options=[{"label": METRICS[m], "value": m} for m in metrics]),
                html.Div(METRIC_NOTES.get(metric, ""), id=ids("metric-note"), className="small text-muted mt-1")],
                md=9),
        ], className="g-3 mb-3"),
        html.Div([html.Div(NULL_NOTE), html.Div(INTERVAL_NOTE)], className="small text-muted mb-2",
                 id=ids("notes")),
        html.Div(export_menu("overview-leaderboard", "Export table", data_only=True), className="clearfix mb-1"),
        dag.AgGrid(id=ids("leaderboard"), columnDefs=columns, rowData=[], className="ag-theme-alpine grid-fit-rows",
                   defaultColDef={"sortable": True, "resizable": True, "flex": 1, "minWidth": 100,
                                  "wrapHeaderText": True, "autoHeaderHeight": True},
                   dashGridOptions={"domLayout": "autoHeight"}, style={"height": None}),
        dbc.Row([
            dbc.Col([html.Div(export_menu("overview-regions"), className="clearfix"),
                     dcc.Loading(dcc.Graph(id=ids("regions"), config=GRAPH_CONFIG))],
                    lg=6),
            dbc.Col([html.Div(export_menu("overview-accuracy"), className="clearfix"),
                     dcc.Loading(dcc.Graph(id=ids("accuracy"), config=GRAPH_CONFIG))], lg=6),
        ], className="mt-3"),
        dbc.Row([
            dbc.Col([dbc.RadioItems(id=ids("size-axis"), value=size, inline=True,
                                    options=[{"label": label, "value": v} for v, label in SIZE_AXES.items()]),
                     dcc.Loading(dcc.Graph(id=ids("size"), config=GRAPH_CONFIG))], lg=6),
            dbc.Col([dbc.RadioItems(id=ids("region"), value=region, inline=True,
                                    options=[{"label": r, "value": r} for r in regions]),
                     dcc.Loading(dcc.Graph(id=ids("layers"), config=GRAPH_CONFIG))], lg=6),
        ], className="mt-3"),
        dbc.Row([
            dbc.Col([dbc.Label("Model"), dcc.Dropdown(id=ids("model"), value=model, clearable=False,
                                                      options=[{"label": m, "value": m} for m in models])], md=4),
        ], className="mt-3"),
        dbc.Row([
            dbc.Col(dcc.Loading(dcc.Graph(id=ids("selection"), config=GRAPH_CONFIG)), lg=6),
            dbc.Col(dcc.Loading(dcc.Graph(id=ids("pls"), config=GRAPH_CONFIG)), lg=6),
        ]),
        html.Div([export_menu("overview-comparisons", "Export table", data_only=True),
                  html.H5("Paired comparisons")], className="clearfix mt-3"),
        empty.not_computed("Paired comparisons between models",
                           f"python -m precompute analyze --dataset {dataset} --model MODEL",
                           after="for a second model")
        if data.model_comparisons(dataset).empty else None,
        html.P("Held-out r (split-half) is the primary comparison; the in-sample r favours models with more units. "
               "Difference: median over sites of A - B; interval and p from a bootstrap that resamples sites "
               "(by animal/array) and stimuli (by object) together; p (Holm) is adjusted over every pair of "
               "models of the region.", className="small text-muted"),
        dag.AgGrid(id=ids("comparisons"), rowData=[], className="ag-theme-alpine",
                   columnDefs=COMPARISON_COLUMNS,
                   defaultColDef={"sortable": True, "filter": True, "resizable": True, "flex": 1,
                                  "wrapHeaderText": True, "autoHeaderHeight": True},
                   dashGridOptions={"pagination": True, "paginationPageSize": 10,
                                    "paginationPageSizeSelector": False},
                   style={"height": 360, "display": "none" if data.model_comparisons(dataset).empty else "block"}),
        dcc.Location(id=ids("nav"), refresh="callback-nav"),
    ])


@dash.callback(Output(ids("nav"), "href"), Input(ids("dataset"), "value"), prevent_initial_call=True)
def switch_dataset(dataset):
    return "/" + to_query({"dataset": dataset})


@dash.callback(
    Output(ids("leaderboard"), "rowData"),
    Output(ids("regions"), "figure"),
    Output(ids("accuracy"), "figure"),
    Input(ids("metric"), "value"),
    State(ids("dataset"), "value"),
)
def update_metric(metric, dataset):
    scores = data.scores(dataset)
    regions = list(dict.fromkeys(data.sites(dataset)["region"]))
    table = leaderboard(scores, metric, regions)
    rows = table.astype(object).where(table.notna(), None).to_dict("records")
    return rows, make_region_scatter_figure(scores, metric), make_score_vs_figure(scores, metric, "imagenet_top1")


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
    comparisons = _comparison_rows(data.model_comparisons(dataset))
    return (make_selection_curve_figure(data.selection_curve(dataset), model,
                                        data.analyze_command(dataset, model, "crossval")),
            make_pls_comparison_figure(single, pls[pls["model"] == model].drop(columns="model"), model,
                                       data.analyze_command(dataset, model, "pls")),
            comparisons.astype(object).where(comparisons.notna(), None).to_dict("records"))


def _comparison_rows(comparisons):
    """The comparisons table's rows: the interval as one readable column."""
    if comparisons.empty:
        return comparisons
    out = comparisons.copy()
    out["ci"] = [f"[{lo:.3f}, {hi:.3f}]" if lo == lo and hi == hi else ""
                 for lo, hi in zip(out["ci_low"], out["ci_high"], strict=True)]
    return out


@dash.callback(Output(ids("metric-note"), "children"), Input(ids("metric"), "value"))
def update_metric_note(metric):
    return METRIC_NOTES.get(metric, "")


@dash.callback(
    Output({"type": "url-query", "page": "overview"}, "data"),
    Input(ids("metric"), "value"),
    Input(ids("region"), "value"),
    Input(ids("model"), "value"),
    Input(ids("size-axis"), "value"),
    State(ids("dataset"), "value"),
)
def update_url(metric, region, model, size, dataset):
    return to_query({"dataset": dataset, "metric": metric, "size": size, "region": region, "model": model})


def _export_scores(dataset, metric):
    dataset = data.require_dataset(dataset)
    scores = data.scores(dataset)
    metrics = available_metrics(scores)
    if not metrics:
        raise NotFoundError("no scores yet")
    metric = metric or metrics[0]
    if metric not in metrics:
        raise NotFoundError(f"unknown metric {str(metric)[:40]!r}")
    return scores, metric


@register_export("overview-regions", "Figure 3: V4 vs IT across models", ("dataset", "metric"))
def export_regions(dataset, metric):
    scores, metric = _export_scores(dataset, metric)
    return make_region_scatter_figure(scores, metric), scores[scores["metric"] == metric]


@register_export("overview-accuracy", "Figure 4: score vs ImageNet top-1", ("dataset", "metric"))
def export_accuracy(dataset, metric):
    scores, metric = _export_scores(dataset, metric)
    return make_score_vs_figure(scores, metric, "imagenet_top1"), scores[scores["metric"] == metric]


@register_export("overview-leaderboard", "The model leaderboard for one score (the table)", ("dataset", "metric"),
                 data_only=True)
def export_leaderboard(dataset, metric):
    scores, metric = _export_scores(dataset, metric)
    regions = list(dict.fromkeys(data.sites(data.require_dataset(dataset))["region"]))
    return None, leaderboard(scores, metric, regions)


@register_export("overview-comparisons", "Paired comparisons between models (the table)", ("dataset",),
                 data_only=True)
def export_comparisons(dataset):
    return None, data.model_comparisons(data.require_dataset(dataset))
