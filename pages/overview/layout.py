"""The Overview's layout: the introduction, the results section (its controls and cards), the datasets
and the build's facts; and the callbacks that keep its URL."""

from __future__ import annotations

import json

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from backend import data, params
from backend.commands import analyze_command, run_command
from backend.config import get_settings
from backend.errors import NotFoundError
from components import empty
from components.figures.overview import INTERVAL_NOTE, METRIC_NOTES, METRICS, NULL_NOTE, available_metrics
from components.urlstate import query_store, to_query
from pages.overview.common import PAGE, ResultsView, ids, results_view
from pages.overview.models import comparisons_section, model_rows
from pages.overview.scores import leaderboard_grid, score_figure_rows


def _intro() -> html.Div:
    return html.Div(
        [
            html.H2("Which single unit behaves like this neuron?"),
            html.P(
                "Unitscope matches every recorded site to the single units of deep networks whose responses "
                "across the stimuli correlate best with it (Arend et al. 2018), and shows the analyses around "
                "those matches.",
                className="lead",
            ),
        ]
    )


def _dataset_cards(datasets) -> dbc.Row:
    cards = []
    for row in datasets.itertuples():
        cards.append(
            dbc.Col(
                dbc.Card(
                    [
                        dbc.CardHeader(
                            [
                                html.Strong(row.title or row.dataset),
                                " ",
                                dbc.Badge("synthetic", color="warning") if row.synthetic else None,
                            ]
                        ),
                        dbc.CardBody(
                            [
                                html.P(row.description, className="small text-muted"),
                                html.P(f"{row.n_stimuli} stimuli · {row.n_sites} sites", className="mb-2"),
                                dcc.Link("Browse the dataset →", href=f"/dataset?dataset={row.dataset}"),
                            ]
                        ),
                    ],
                    className="h-100",
                ),
                md=6,
                lg=4,
                className="mb-3",
            )
        )
    return dbc.Row(cards) if cards else dbc.Alert("No dataset yet: the build is still running.", color="info")


def _build_facts(info: dict) -> html.Ul:
    steps = json.loads(info.get("steps_done", "[]"))
    return html.Ul(
        [
            html.Li(["build id ", html.Code(info.get("build_id", "?"))]),
            html.Li(f"published {info.get('published_at', '?')}"),
            html.Li(f"schema version {info.get('schema_version', '?')}"),
            html.Li(f"{len(steps)} steps done: " + ", ".join(steps)),
        ],
        className="small",
        id="overview-build",
    )


def layout(dataset=None, metric=None, region=None, model=None, size=None, **_ignored):
    if not data.database_ready():
        return empty.no_database(str(get_settings().db_path))
    datasets = data.datasets()
    parts = [_intro()]
    if len(datasets):
        try:
            results = results_section(dataset, metric, region, model, size)
        except NotFoundError as exc:
            results = empty.friendly_error(str(exc))
        parts.append(results)
    parts += [
        html.H4("Datasets", className="mt-4"),
        _dataset_cards(datasets),
        html.H4("This build", className="mt-4"),
        _build_facts(data.build_info()),
        *query_store(PAGE),
    ]
    return html.Div(parts)


def results_section(dataset, metric, region, model, size=None):
    """The models' results, or what to run when the dataset has none yet."""
    dataset = params.require_dataset(dataset)
    scores = data.scores(dataset)
    if not available_metrics(scores):
        if data.matched_models(dataset).empty:
            return empty.not_computed(f"Matching on {dataset}", run_command(dataset))
        return empty.not_computed(f"Scores on {dataset}", analyze_command(dataset, data.PREFERRED_MODEL))
    view = results_view(dataset, scores, metric, region, model, size)
    return html.Div(
        [
            html.H4("Models", className="mt-2"),
            _controls(view),
            html.Div(
                [html.Div(NULL_NOTE), html.Div(INTERVAL_NOTE)], className="small text-muted mb-2", id=ids("notes")
            ),
            *leaderboard_grid(dataset),
            *score_figure_rows(view),
            *model_rows(view),
            *comparisons_section(dataset),
            dcc.Location(id=ids("nav"), refresh="callback-nav"),
        ]
    )


def _controls(view: ResultsView) -> dbc.Row:
    """The dataset and the score shown."""
    return dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("Dataset"),
                    dcc.Dropdown(
                        id=ids("dataset"),
                        value=view.dataset,
                        clearable=False,
                        options=[
                            {"label": t or d, "value": d}
                            for d, t in data.datasets()[["dataset", "title"]].itertuples(index=False)
                        ],
                    ),
                ],
                md=3,
            ),
            dbc.Col(
                [
                    dbc.Label("Score"),
                    dbc.RadioItems(
                        id=ids("metric"),
                        value=view.metric,
                        inline=True,
                        options=[{"label": METRICS[m], "value": m} for m in view.metrics],
                    ),
                    html.Div(
                        METRIC_NOTES.get(view.metric, ""), id=ids("metric-note"), className="small text-muted mt-1"
                    ),
                ],
                md=9,
            ),
        ],
        className="g-3 mb-3",
    )


@dash.callback(Output(ids("nav"), "href"), Input(ids("dataset"), "value"), prevent_initial_call=True)
def switch_dataset(dataset):
    return "/" + to_query({"dataset": dataset})


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
