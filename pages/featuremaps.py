"""Feature maps page: which feature maps and positions the matches use (Figures 8, S11), and which feature
maps the recordings validate (Figure S13).

URL: /feature-maps?dataset=...&model=...&region=V4&layer=12&top=1
"""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from backend import data
from backend.data import NotFoundError
from components import empty
from components.exports import card_header, register_export
from components.figures.featuremaps import (
    make_featuremap_counts_figure,
    make_position_figure,
    make_validated_figure,
    validated_featuremaps,
)
from components.filters import filter_bar, register_navigation
from components.ids import PageIds
from components.urlstate import query_store, to_query

dash.register_page(__name__, path="/feature-maps", name="Feature maps", order=5, title="Unitscope · Feature maps")

ids = PageIds("featuremaps")
GRAPH_CONFIG = {"displaylogo": False}


@empty.guarded
def layout(dataset=None, model=None, region=None, layer=None, top=None, **_ignored):
    f = data.resolve_filters(dataset, model, region, layer, need_layer=True)
    top_value = "all" if top == "all" else "1"
    if top not in (None, "", "1", "all"):
        raise NotFoundError(f"top must be 1 or all, got {str(top)[:20]!r}")
    return html.Div([
        html.H2("Feature maps and positions"),
        filter_bar(ids, f, with_layer=True),
        dbc.RadioItems(id=ids("top"), value=top_value, inline=True, className="mb-3",
                       options=[{"label": "best unit of each site", "value": "1"},
                                {"label": "top-K units of each site (within the layer)", "value": "all"}]),
        dbc.Row([
            dbc.Col(dbc.Card([card_header(
                "Sites per feature map (Figure 8)", "featuremaps-counts"), dbc.CardBody(
                dcc.Loading(dcc.Graph(id=ids("counts"), config=GRAPH_CONFIG)))]), lg=7),
            dbc.Col(dbc.Card([dbc.CardHeader("Sites per x and y position (Figure S11)"), dbc.CardBody(
                dcc.Loading(dcc.Graph(id=ids("positions"), config=GRAPH_CONFIG)))]), lg=5),
        ], className="mb-4"),
        dbc.Card([card_header(
                "Validated and unvalidated feature maps (Figure S13)", "featuremaps-validated"), dbc.CardBody([
            dcc.Loading(dcc.Graph(id=ids("validated"), config=GRAPH_CONFIG)),
            dag.AgGrid(id=ids("validated-table"), rowData=[], columnDefs=[], className="ag-theme-alpine",
                       defaultColDef={"sortable": True, "filter": True, "resizable": True, "flex": 1},
                       dashGridOptions={"pagination": True, "paginationPageSize": 10,
                                        "paginationPageSizeSelector": False},
                       style={"height": 380}),
        ])], className="mb-4"),
        *query_store("featuremaps"),
    ])


register_navigation(ids, "/feature-maps", with_layer=True, keep=("top",))


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
    info = data.layers(model).set_index("layer_idx").loc[int(layer)]
    topk = data.layer_topk(dataset, model, int(layer), region)
    k = 1 if top == "1" else int(topk["rank"].max() or 1) if len(topk) else 1
    table = validated_featuremaps(data.featuremap_best(dataset, model, int(layer), region), channels=int(info.channels))
    columns = [{"field": c, **({"valueFormatter": {"function": "params.value == null ? '' : "
                                                   "d3.format('.3f')(params.value)"}} if c == "best_r" else {})}
               for c in table.columns]
    return (
        make_featuremap_counts_figure(topk, channels=int(info.channels), region=region, layer=info.layer, top=k),
        make_position_figure(topk, height=int(info.height), width=int(info.width), region=region, top=k),
        make_validated_figure(table, region=region, layer=info.layer),
        table.astype(object).where(table.notna(), None).to_dict("records"),
        columns,
    )


@dash.callback(
    Output({"type": "url-query", "page": "featuremaps"}, "data"),
    Input(ids("top"), "value"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
    State(ids("f-region"), "value"),
    State(ids("f-layer"), "value"),
)
def update_url(top, dataset, model, region, layer):
    return to_query({"dataset": dataset, "model": model, "region": region, "layer": layer,
                     "top": None if top == "1" else top})


@register_export("featuremaps-counts", "Figure 8: sites per feature map",
                 ("dataset", "model", "region", "layer", "top"))
def export_counts(dataset, model, region, layer, top):
    f = data.resolve_filters(dataset, model, region, layer, need_layer=True)
    info = data.layers(f.model).set_index("layer_idx").loc[f.layer]
    topk = data.layer_topk(f.dataset, f.model, f.layer, f.region)
    k = int(topk["rank"].max()) if top == "all" and len(topk) else 1
    fig = make_featuremap_counts_figure(topk, channels=int(info.channels), region=f.region, layer=info.layer, top=k)
    return fig, topk[topk["rank"] <= k]


@register_export("featuremaps-validated", "Figure S13: validated feature maps", ("dataset", "model", "region", "layer"))
def export_validated(dataset, model, region, layer):
    f = data.resolve_filters(dataset, model, region, layer, need_layer=True)
    info = data.layers(f.model).set_index("layer_idx").loc[f.layer]
    table = validated_featuremaps(data.featuremap_best(f.dataset, f.model, f.layer, f.region),
                                  channels=int(info.channels))
    return make_validated_figure(table, region=f.region, layer=info.layer), table
