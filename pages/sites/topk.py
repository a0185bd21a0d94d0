"""The Sites page's top-K card (the site's best units; a row picks the rank) and runner-ups card."""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, ctx, dcc

from backend import data
from components.exports import card_header, register_export
from components.figures.sites import make_runnerup_histogram_figure
from components.links import LINK_COLUMN, markdown_link, unit_href
from components.theme import GRAPH_CONFIG
from pages.sites.common import ids, model_top_k, resolve_view, valid_rank

_R = {"function": "d3.format('.4f')(params.value)"}
TOPK_COLUMNS = [
    {"field": "rank", "headerName": "rank", "width": 75},
    {"field": "layer_idx", "headerName": "#", "headerTooltip": "layer index", "width": 65},
    {"field": "layer", "headerName": "layer", "flex": 1, "minWidth": 120},
    {"field": "channel", "headerName": "c", "headerTooltip": "channel (feature map)", "width": 70},
    {"field": "y", "headerName": "y", "width": 55},
    {"field": "x", "headerName": "x", "width": 55},
    {"field": "r", "headerName": "r", "valueFormatter": _R, "width": 90},
    {"field": "unit", "headerName": "unit", "width": 70, **LINK_COLUMN},
]


def topk_row(top_k: int) -> dbc.Row:
    """The top-K table's card beside the runner-ups card."""
    return dbc.Row(
        [
            dbc.Col(
                dbc.Card(
                    [
                        card_header(f"Top {top_k} units (click a row to plot it)", "sites-topk", data_only=True),
                        dbc.CardBody(
                            dag.AgGrid(
                                id=ids("topk"),
                                columnDefs=TOPK_COLUMNS,
                                rowData=[],
                                defaultColDef={"sortable": True, "resizable": True},
                                dashGridOptions={
                                    "pagination": True,
                                    "paginationPageSize": 10,
                                    "paginationPageSizeSelector": False,
                                    "rowSelection": {
                                        "mode": "singleRow",
                                        "checkboxes": False,
                                        "enableClickSelection": True,
                                    },
                                },
                                style={"height": 400},
                                className="ag-theme-alpine",
                            )
                        ),
                    ]
                ),
                lg=6,
            ),
            dbc.Col(
                dbc.Card(
                    [
                        card_header("Runner-up units", "sites-runnerups"),
                        dbc.CardBody(dcc.Loading(dcc.Graph(id=ids("runnerups"), config=GRAPH_CONFIG))),
                    ]
                ),
                lg=6,
            ),
        ],
        className="mb-4",
    )


def topk_table(dataset: str, model: str, site: str) -> pd.DataFrame:
    """The site's top-K units over the whole model (the table's rows, and the runner-ups' data)."""
    return data.site_matches(dataset, model, site)


def topk_rows(top: pd.DataFrame, dataset: str, model: str, region: str, site: str) -> list[dict]:
    """The top-K table's rows, each with a link to its unit's page (drawn against this site)."""
    rows = top.to_dict("records")
    for row in rows:
        row["unit"] = markdown_link(
            "open",
            unit_href(dataset, model, row["layer_idx"], row["channel"], row["y"], row["x"], region=region, site=site),
        )
    return rows


def runnerups_card(dataset: str, model: str, region: str, site: str):
    """(figure, frame): the r of the site's top-K units."""
    top = topk_table(dataset, model, site)
    return make_runnerup_histogram_figure(top, region=region), top


@dash.callback(
    Output(ids("rank"), "value"),
    Output(ids("topk"), "selectedRows"),
    Output(ids("rank"), "invalid"),
    Input(ids("topk"), "selectedRows"),
    Input(ids("rank"), "value"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
    prevent_initial_call=True,
)
def sync_rank_and_table(rows, rank, dataset, model):
    return rank_table_sync(ctx.triggered_id == ids("topk"), rows, rank, model_top_k(dataset, model))


def rank_table_sync(from_table: bool, rows, rank, top_k: int):
    """(rank, table selection, field invalid): a clicked row sets the rank; a typed rank selects its row,
    or, when it is not valid, clears the selection (no stale unit stays selected) and marks the field."""
    selected = rows[0]["rank"] if isinstance(rows, list) and rows else None
    if from_table:
        return (selected if selected is not None and selected != rank else dash.no_update), dash.no_update, False
    rank = valid_rank(rank, top_k)
    if rank is None:
        return dash.no_update, [], True
    if rank == selected:
        return dash.no_update, dash.no_update, False
    return dash.no_update, {"function": f"params.data.rank === {rank}"}, False


@register_export("sites-runnerups", "The site's top-K units", ("dataset", "model", "region", "site"))
def export_runnerups(dataset, model, region, site):
    f, site, _ = resolve_view(dataset, model, region, site, None)
    return runnerups_card(f.dataset, f.model, f.region, site)


@register_export(
    "sites-topk", "The site's top-K units (the table)", ("dataset", "model", "region", "site"), data_only=True
)
def export_topk(dataset, model, region, site):
    f, site, _ = resolve_view(dataset, model, region, site, None)
    return None, topk_table(f.dataset, f.model, site)
