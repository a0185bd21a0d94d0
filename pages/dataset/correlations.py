"""The Dataset page's site-by-site response correlation card (Figure S12), per region."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html

from backend import data, params
from components.exports import export_menu, register_export
from components.figures.dataset import make_site_correlation_figure
from components.theme import GRAPH_CONFIG, empty_figure
from pages.dataset.common import ids


def correlations_card(state: dict) -> dbc.Card:
    regions = data.regions(state["dataset"])
    return dbc.Card(
        [
            dbc.CardHeader(
                dbc.Row(
                    [
                        dbc.Col([html.Span("Site-by-site response correlation (Figure S12)")], width="auto"),
                        dbc.Col(export_menu("dataset-correlations"), width="auto"),
                        dbc.Col(
                            dbc.RadioItems(
                                id=ids("region"),
                                options=[{"label": r, "value": r} for r in regions],
                                value=state["region"],
                                inline=True,
                            ),
                            width="auto",
                        ),
                    ],
                    justify="between",
                )
            ),
            dbc.CardBody(dcc.Loading(dcc.Graph(id=ids("corr"), config=GRAPH_CONFIG))),
        ],
        className="mb-4",
    )


def correlations_figure(dataset: str, region: str):
    """The card's (figure, frame), for the callback and the export alike."""
    frame = data.site_correlations(dataset, region)
    return make_site_correlation_figure(frame, region=region), frame


@dash.callback(Output(ids("corr"), "figure"), Input(ids("dataset"), "value"), Input(ids("region"), "value"))
def update_correlations(dataset, region):
    if not region:
        return empty_figure("Pick a region")
    return correlations_figure(dataset, region)[0]


@register_export("dataset-correlations", "Figure S12: site-by-site response correlation", ("dataset", "region"))
def export_correlations(dataset, region):
    dataset = params.require_dataset(dataset)
    return correlations_figure(dataset, params.require_region(dataset, region))
