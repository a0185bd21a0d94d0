"""Feature maps page: which feature maps and positions the matches use (Figures 8, S11), and which feature
maps the recordings validate (Figure S13).

URL: /feature-maps?dataset=...&model=...&region=V4&layer=12&top=1
"""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from backend import data, params
from backend.params import Filters
from components import empty
from components.exports import card_header, export_menu, register_export
from components.figures.featuremaps import (
    make_featuremap_counts_figure,
    make_position_figure,
    make_validated_figure,
    validated_featuremaps,
)
from components.filters import filter_bar, register_navigation
from components.ids import PageIds
from components.links import LINK_COLUMN, markdown_link, unit_hrefs
from components.theme import GRAPH_CONFIG, GRID_COLUMNS
from components.urlstate import query_store, to_query

dash.register_page(__name__, path="/feature-maps", name="Feature maps", order=5, title="Unitscope · Feature maps")

ids = PageIds("featuremaps")
TOP_CHOICES = ["1", "all"]  # the site's best unit, or its top-K within the layer
TABLE_HEADERS = {
    "channel": "feature map",
    "best_site": "best site",
    "best_r": "best r",
    "best_y": "its y",
    "best_x": "its x",
}


def _validated_card() -> dbc.Card:
    """Figure S13 and the table of every feature map of the layer."""
    return dbc.Card(
        [
            card_header("Validated and unvalidated feature maps (Figure S13)", "featuremaps-validated"),
            dbc.CardBody(
                [
                    dcc.Loading(dcc.Graph(id=ids("validated"), config=GRAPH_CONFIG)),
                    html.Div(
                        [
                            export_menu("featuremaps-table", "Export table", data_only=True),
                            html.H6(
                                "Every feature map of the layer: its best site and how many sites pass each threshold",
                                className="mt-2",
                            ),
                        ],
                        className="clearfix mb-2",
                    ),
                    dag.AgGrid(
                        id=ids("validated-table"),
                        rowData=[],
                        columnDefs=[],
                        className="ag-theme-alpine",
                        defaultColDef=GRID_COLUMNS,
                        # field names such as "sites_r>0.3" hold a dot: not a nested path
                        dashGridOptions={
                            "pagination": True,
                            "paginationPageSize": 10,
                            "paginationPageSizeSelector": False,
                            "suppressFieldDotNotation": True,
                        },
                        style={"height": 380},
                    ),
                ]
            ),
        ],
        className="mb-4",
    )


@empty.guarded
def layout(dataset=None, model=None, region=None, layer=None, top=None, **_ignored):
    f = params.resolve_filters(dataset, model, region, layer, need_layer=True)
    top_value = params.require_choice("top", top, TOP_CHOICES)
    return html.Div(
        [
            html.H2("Feature maps and positions"),
            filter_bar(ids, f, with_layer=True),
            dbc.RadioItems(
                id=ids("top"),
                value=top_value,
                inline=True,
                className="mb-3",
                options=[
                    {"label": "best unit of each site", "value": "1"},
                    {"label": "top-K units of each site (within the layer)", "value": "all"},
                ],
            ),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Card(
                            [
                                card_header("Sites per feature map (Figure 8)", "featuremaps-counts"),
                                dbc.CardBody(dcc.Loading(dcc.Graph(id=ids("counts"), config=GRAPH_CONFIG))),
                            ]
                        ),
                        lg=7,
                    ),
                    dbc.Col(
                        dbc.Card(
                            [
                                card_header("Sites per x and y position (Figure S11)", "featuremaps-positions"),
                                dbc.CardBody(dcc.Loading(dcc.Graph(id=ids("positions"), config=GRAPH_CONFIG))),
                            ]
                        ),
                        lg=5,
                    ),
                ],
                className="mb-4",
            ),
            _validated_card(),
            *query_store("featuremaps"),
        ]
    )


register_navigation(ids, "/feature-maps", with_layer=True, keep=("top",))


# ---------------------------------------------------------------- cards: (figure, frame) of a valid view
def _layer(f: Filters):
    return data.layers(f.model).set_index("layer_idx").loc[int(f.layer)]


def _topk(f: Filters, top: str):
    """The region's top-K units within the layer, and K as the cards count it (1: each site's best unit)."""
    topk = data.layer_topk(f.dataset, f.model, int(f.layer), f.region)
    k = int(topk["rank"].max() or 1) if top == "all" and len(topk) else 1
    return topk, k


def counts_card(f: Filters, top: str):
    info, (topk, k) = _layer(f), _topk(f, top)
    fig = make_featuremap_counts_figure(topk, channels=int(info.channels), region=f.region, layer=info.layer, top=k)
    return fig, topk[topk["rank"] <= k]


def positions_card(f: Filters, top: str):
    info, (topk, k) = _layer(f), _topk(f, top)
    fig = make_position_figure(topk, height=int(info.height), width=int(info.width), region=f.region, top=k)
    return fig, topk[topk["rank"] <= k]


def validated_table(f: Filters):
    """Every feature map of the layer: its best site, r, and the sites per threshold (Figure S13's rows)."""
    return validated_featuremaps(
        data.featuremap_best(f.dataset, f.model, int(f.layer), f.region), channels=int(_layer(f).channels)
    )


def validated_card(f: Filters):
    table = validated_table(f)
    return make_validated_figure(table, region=f.region, layer=_layer(f).layer), table


def table_columns(table) -> list[dict]:
    columns = [
        {
            "field": c,
            "headerName": TABLE_HEADERS.get(c, c.replace("sites_r>", "sites r > ")),
            **(
                {"valueFormatter": {"function": "params.value == null ? '' : d3.format('.3f')(params.value)"}}
                if c == "best_r"
                else {}
            ),
        }
        for c in table.columns
    ]
    columns.append({"field": "unit", "headerName": "best site's unit", "minWidth": 130, **LINK_COLUMN})
    return columns


@dash.callback(
    Output(ids("counts"), "figure"),
    Output(ids("positions"), "figure"),
    Output(ids("validated"), "figure"),
    Output(ids("validated-table"), "rowData"),
    Output(ids("validated-table"), "columnDefs"),
    Input(ids("top"), "value"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
    State(ids("f-region"), "value"),
    State(ids("f-layer"), "value"),
)
def update_featuremaps(top, dataset, model, region, layer):
    f = Filters(dataset, model, region, int(layer))
    validated, table = validated_card(f)
    return (
        counts_card(f, top)[0],
        positions_card(f, top)[0],
        validated,
        validated_rows(table, dataset, model, region, int(layer)),
        table_columns(table),
    )


def validated_rows(table, dataset: str, model: str, region: str, layer: int) -> list[dict]:
    """Table rows; each feature map with a best site links to that site's best unit in it (its Unit page)."""
    rows = table.astype(object).where(table.notna(), None).to_dict("records")
    linked = [row for row in rows if row.get("best_site") is not None and row.get("best_y") is not None]
    hrefs = unit_hrefs(
        dataset,
        model,
        region,
        layer,
        ((row["channel"], row["best_y"], row["best_x"], row["best_site"]) for row in linked),
    )
    for row, href in zip(linked, hrefs, strict=True):
        row["unit"] = markdown_link("open", href)
    return rows


@dash.callback(
    Output({"type": "url-query", "page": "featuremaps"}, "data"),
    Input(ids("top"), "value"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
    State(ids("f-region"), "value"),
    State(ids("f-layer"), "value"),
)
def update_url(top, dataset, model, region, layer):
    return to_query(
        {"dataset": dataset, "model": model, "region": region, "layer": layer, "top": None if top == "1" else top}
    )


# ---------------------------------------------------------------- exports: the same cards, validated
FILTERS = ("dataset", "model", "region", "layer")


def _filters(dataset, model, region, layer) -> Filters:
    return params.resolve_filters(dataset, model, region, layer, need_layer=True)


@register_export("featuremaps-counts", "Figure 8: sites per feature map", (*FILTERS, "top"))
def export_counts(dataset, model, region, layer, top):
    return counts_card(_filters(dataset, model, region, layer), params.require_choice("top", top, TOP_CHOICES))


@register_export("featuremaps-positions", "Figure S11: sites per x and y position", (*FILTERS, "top"))
def export_positions(dataset, model, region, layer, top):
    return positions_card(_filters(dataset, model, region, layer), params.require_choice("top", top, TOP_CHOICES))


@register_export("featuremaps-validated", "Figure S13: validated feature maps", FILTERS)
def export_validated(dataset, model, region, layer):
    return validated_card(_filters(dataset, model, region, layer))


@register_export(
    "featuremaps-table",
    "Every feature map of a layer: best site, r, sites per threshold (the table)",
    FILTERS,
    data_only=True,
)
def export_table(dataset, model, region, layer):
    return None, validated_table(_filters(dataset, model, region, layer))
