"""The Sites page's site and rank controls: what follows the site (top-K, runner-ups, statistics,
receptive fields) and the view's URL."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc

from backend import data
from backend.commands import analyze_command
from components.urlstate import to_query
from pages.sites.common import ids, model_top_k, valid_rank
from pages.sites.site_panel import rf_figures, site_stats
from pages.sites.topk import runnerups_card, topk_rows


def controls(dataset: str, region: str, site: str, rank: int, top_k: int) -> dbc.Row:
    sites = data.sites(dataset)
    return dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("Site", html_for=ids("site")),
                    dcc.Dropdown(
                        id=ids("site"),
                        clearable=False,
                        value=site,
                        options=[{"label": s, "value": s} for s in sites[sites["region"] == region]["site_id"]],
                    ),
                ],
                md=4,
            ),
            dbc.Col(
                [
                    dbc.Label("Rank of the unit", html_for=ids("rank")),
                    dbc.Input(id=ids("rank"), type="number", min=1, max=top_k, step=1, value=rank, debounce=True),
                    dbc.FormFeedback(f"A whole number from 1 to {top_k}.", type="invalid"),
                ],
                md=2,
            ),
        ],
        className="g-3 mb-3",
    )


@dash.callback(
    Output(ids("topk"), "rowData"),
    Output(ids("runnerups"), "figure"),
    Output(ids("stats"), "children"),
    Output(ids("rf"), "figure"),
    Output(ids("unit-rf"), "figure"),
    Output(ids("unit-rf-note"), "children"),
    Input(ids("site"), "value"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
    State(ids("f-region"), "value"),
)
def update_site(site, dataset, model, region):
    runnerups, top = runnerups_card(dataset, model, region, site)
    site_row = data.sites(dataset).set_index("site_id").loc[site]
    stats = site_stats(site_row, data.site_scores(dataset, model, site), top, analyze_command(dataset, model))
    return (topk_rows(top, dataset, model, region, site), runnerups, stats, *rf_figures(dataset, model, site, site_row))


@dash.callback(
    Output({"type": "url-query", "page": "sites"}, "data"),
    Input(ids("site"), "value"),
    Input(ids("rank"), "value"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
    State(ids("f-region"), "value"),
)
def update_url(site, rank, dataset, model, region):
    """The view's query; while the typed rank is not valid the address keeps the last valid view."""
    rank = valid_rank(rank, model_top_k(dataset, model))
    if rank is None:
        return dash.no_update
    return to_query(
        {
            "dataset": dataset,
            "model": model,
            "region": region,
            "site": site,
            "rank": None if rank in (None, 1) else rank,
        }
    )
