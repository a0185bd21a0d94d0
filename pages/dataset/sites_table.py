"""The Dataset page's sites card: the sites table (a row picks the receptive field's site) and the
reliability histogram."""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, dcc

from backend import data, params
from components.exports import card_header, register_export
from components.figures.dataset import make_reliability_figure
from components.theme import GRAPH_CONFIG
from pages.dataset.common import ids

_NUM = {"function": "params.value == null ? '' : d3.format('.2f')(params.value)"}
SITE_COLUMNS = [
    {"field": "site_id", "headerName": "site", "minWidth": 150, "pinned": "left"},
    {"field": "region", "minWidth": 110},
    {"field": "subregion", "minWidth": 130},
    {"field": "reliability", "minWidth": 125, "valueFormatter": _NUM, "filter": "agNumberColumnFilter"},
    {"field": "rf_x_deg", "headerName": "RF x°", "valueFormatter": _NUM, "filter": "agNumberColumnFilter"},
    {"field": "rf_y_deg", "headerName": "RF y°", "valueFormatter": _NUM, "filter": "agNumberColumnFilter"},
    {"field": "rf_size_deg", "headerName": "RF size°", "valueFormatter": _NUM, "filter": "agNumberColumnFilter"},
]
SITE_TABLE_COLUMNS = [c["field"] for c in SITE_COLUMNS]


def sites_table(dataset: str) -> pd.DataFrame:
    """The table's rows (what the card shows and its export serves)."""
    return data.sites(dataset)[SITE_TABLE_COLUMNS]


def _site_rows(table: pd.DataFrame) -> list[dict]:
    return table.astype(object).where(table.notna(), None).to_dict("records")


def sites_card(dataset: str) -> dbc.Card:
    return dbc.Card(
        [
            card_header("Sites", "dataset-sites", data_only=True),
            dbc.CardBody(
                [
                    dbc.Row(
                        [
                            dbc.Col(
                                dag.AgGrid(
                                    id=ids("sites-table"),
                                    rowData=_site_rows(sites_table(dataset)),
                                    columnDefs=SITE_COLUMNS,
                                    defaultColDef={
                                        "sortable": True,
                                        "filter": True,
                                        "resizable": True,
                                        "flex": 1,
                                        "minWidth": 100,
                                        "wrapHeaderText": True,
                                        "autoHeaderHeight": True,
                                    },
                                    dashGridOptions={
                                        "pagination": True,
                                        "paginationPageSize": 10,
                                        "paginationPageSizeSelector": False,
                                        "rowSelection": {"mode": "singleRow"},
                                    },
                                    style={"height": 420},
                                    className="ag-theme-alpine",
                                ),
                                lg=7,
                            ),
                            dbc.Col(
                                dcc.Graph(
                                    id=ids("reliability"),
                                    figure=make_reliability_figure(data.sites(dataset)),
                                    config=GRAPH_CONFIG,
                                ),
                                lg=5,
                            ),
                        ]
                    ),
                ]
            ),
        ],
        className="mb-4",
    )


@dash.callback(
    Output(ids("site"), "value"),
    Input(ids("sites-table"), "selectedRows"),
    prevent_initial_call=True,
)
def select_site_from_table(rows):
    if not rows:
        return dash.no_update
    return rows[0]["site_id"]


@register_export("dataset-sites", "The dataset's sites (the table)", ("dataset",), data_only=True)
def export_sites(dataset):
    return None, sites_table(params.require_dataset(dataset))
