"""The Dataset page's receptive-field card (Figure S2): one site's mapped field, and every site's centre."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc

from backend import data
from components.figures.dataset import make_rf_map_figure, make_rf_scatter_figure
from components.theme import GRAPH_CONFIG, empty_figure
from pages.dataset.common import ids


def rf_card(state: dict) -> dbc.Card:
    sites = data.sites(state["dataset"])
    return dbc.Card(
        [
            dbc.CardHeader("Receptive fields (Figure S2): mapped with 1° squares on an 8×8 grid"),
            dbc.CardBody(
                [
                    dbc.Row(
                        [
                            dbc.Col(
                                [
                                    dbc.Label("Site"),
                                    dcc.Dropdown(
                                        id=ids("site"),
                                        options=[
                                            {"label": f"{s} ({r})", "value": s}
                                            for s, r in sites[["site_id", "region"]].itertuples(index=False)
                                        ],
                                        value=state["site"],
                                        clearable=False,
                                    ),
                                ],
                                md=6,
                            )
                        ],
                        className="mb-2",
                    ),
                    dbc.Row(
                        [
                            dbc.Col(dcc.Loading(dcc.Graph(id=ids("rf-map"), config=GRAPH_CONFIG)), lg=6),
                            dbc.Col(
                                dcc.Graph(
                                    id=ids("rf-scatter"), figure=make_rf_scatter_figure(sites), config=GRAPH_CONFIG
                                ),
                                lg=6,
                            ),
                        ]
                    ),
                ]
            ),
        ],
        className="mb-4",
    )


@dash.callback(Output(ids("rf-map"), "figure"), Input(ids("dataset"), "value"), Input(ids("site"), "value"))
def update_rf_map(dataset, site):
    if not site:
        return empty_figure("Pick a site")
    frame = data.site_rf(dataset, site)
    return make_rf_map_figure(frame.iloc[0] if len(frame) else None, site_id=site)
