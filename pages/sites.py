"""Sites page: one site, its best units, and the scatter of neural vs unit responses (Figure 2).

URL: /sites?dataset=...&model=...&region=V4&site=...&rank=1
"""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, ctx, dcc, html

from backend import data
from backend.data import NotFoundError
from components import empty
from components.exports import card_header, register_export
from components.figures.dataset import make_rf_map_figure
from components.figures.sites import (
    make_runnerup_histogram_figure,
    make_site_scatter_figure,
    make_unit_rf_figure,
)
from components.filters import filter_bar, register_navigation
from components.ids import PageIds
from components.links import LINK_COLUMN, markdown_link, unit_href
from components.stimuli import stimulus_src, thumbnail_strip
from components.theme import empty_figure
from components.urlstate import query_store, to_query

dash.register_page(__name__, path="/sites", name="Sites", order=2, title="Unitscope · Sites")

ids = PageIds("sites")
GRAPH_CONFIG = {"displaylogo": False}
N_TOP_STIMULI = 8
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


def parse_rank(raw, top_k: int) -> int:
    if raw in (None, ""):
        return 1
    try:
        rank = float(raw) if isinstance(raw, float) else int(raw)
    except (TypeError, ValueError):
        raise NotFoundError(f"rank must be a whole number, got {str(raw)[:40]!r}") from None
    if rank != int(rank):
        raise NotFoundError(f"rank must be a whole number, got {raw!r}")
    rank = int(rank)
    if not 1 <= rank <= top_k:
        raise NotFoundError(f"rank {rank} is out of range 1..{top_k}")
    return rank


def valid_rank(raw, top_k: int) -> int | None:
    """The rank typed into the page's field, or None where it is empty or not a whole number in 1..top_k.

    The browser's number field already gives None for a value outside its min/max/step."""
    if raw in (None, ""):
        return None
    try:
        return parse_rank(raw, top_k)
    except NotFoundError:
        return None


def model_top_k(dataset: str, model: str) -> int:
    return int(data.matched_models(dataset).set_index("model").loc[model, "top_k"])


def rank_message(top_k: int) -> str:
    return f"Enter a rank from 1 to {top_k} (a whole number) to plot the site against its unit at that rank."


@empty.guarded
def layout(dataset=None, model=None, region=None, site=None, rank=None, **_ignored):
    f = data.resolve_filters(dataset, model, region)
    site = data.require_site(f.dataset, site, f.region)
    top_k = model_top_k(f.dataset, f.model)
    rank = parse_rank(rank, top_k)
    sites = data.sites(f.dataset)
    region_sites = sites[sites["region"] == f.region]
    controls = dbc.Row([
        dbc.Col([dbc.Label("Site", html_for=ids("site")), dcc.Dropdown(
            id=ids("site"), clearable=False, value=site,
            options=[{"label": s, "value": s} for s in region_sites["site_id"]])], md=4),
        dbc.Col([dbc.Label("Rank of the unit", html_for=ids("rank")), dbc.Input(
            id=ids("rank"), type="number", min=1, max=top_k, step=1, value=rank, debounce=True),
            dbc.FormFeedback(f"A whole number from 1 to {top_k}.", type="invalid")], md=2),
    ], className="g-3 mb-3")
    return html.Div([
        html.H2("Sites and their best units"),
        filter_bar(ids, f),
        controls,
        dbc.Row([
            dbc.Col(dbc.Card([card_header("Neural vs unit responses (Figure 2)", "sites-scatter"), dbc.CardBody(
                dcc.Loading(dcc.Graph(id=ids("scatter"), config=GRAPH_CONFIG, clear_on_unhover=False)))]), lg=8),
            dbc.Col([
                dbc.Card([dbc.CardHeader("Site"), dbc.CardBody(id=ids("stats"))], className="mb-3"),
                dbc.Card([dbc.CardHeader("Hovered stimulus"), dbc.CardBody(
                    html.Div("Hover a point to see its stimulus.", id=ids("hover"), className="small text-muted"))]),
            ], lg=4),
        ], className="mb-4"),
        dbc.Row([
            dbc.Col(dbc.Card([card_header(f"Top {top_k} units (click a row to plot it)", "sites-topk", data_only=True),
                              dbc.CardBody(dag.AgGrid(
                id=ids("topk"), columnDefs=TOPK_COLUMNS, rowData=[],
                defaultColDef={"sortable": True, "resizable": True},
                dashGridOptions={"pagination": True, "paginationPageSize": 10, "paginationPageSizeSelector": False,
                                 "rowSelection": {"mode": "singleRow", "checkboxes": False,
                                                  "enableClickSelection": True}},
                style={"height": 400}, className="ag-theme-alpine"))]), lg=6),
            dbc.Col(dbc.Card([card_header("Runner-up units", "sites-runnerups"), dbc.CardBody(
                dcc.Loading(dcc.Graph(id=ids("runnerups"), config=GRAPH_CONFIG)))]), lg=6),
        ], className="mb-4"),
        dbc.Card([dbc.CardHeader("The stimuli that drive the site most, and those that drive its unit most"),
                  dbc.CardBody(dcc.Loading(html.Div(id=ids("top-stimuli"))))], className="mb-4"),
        dbc.Card([dbc.CardHeader("Receptive field (Figure S2)"), dbc.CardBody(dbc.Row([
            dbc.Col(dcc.Loading(dcc.Graph(id=ids("rf"), config=GRAPH_CONFIG)), lg=6),
            dbc.Col([dcc.Loading(dcc.Graph(id=ids("unit-rf"), config=GRAPH_CONFIG)),
                     html.Div(id=ids("unit-rf-note"))], lg=6),
        ]))], className="mb-4"),
        *query_store("sites"),
    ])


register_navigation(ids, "/sites", keep=("site",))


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
    top = data.site_matches(dataset, model, site)
    site_row = data.sites(dataset).set_index("site_id").loc[site]
    rf = data.site_rf(dataset, site)
    rf_fig = make_rf_map_figure(rf.iloc[0] if len(rf) else None, site_id=site)
    unit_rf = make_unit_rf_figure(data.unit_receptive_fields(dataset, model, site), site_row, site_id=site,
                                  model=model, command=data.analyze_command(dataset, model, "receptive_fields"))
    return (topk_rows(top, dataset, model, region, site), make_runnerup_histogram_figure(top, region=region),
            site_stats(site_row, data.site_scores(dataset, model, site), top,
                       f"python -m precompute analyze --dataset {dataset} --model {model}"), rf_fig, unit_rf,
            empty.analysis_notes(data.analysis_notes(dataset, "receptive_fields", model), with_model=False))


def topk_rows(top: pd.DataFrame, dataset: str, model: str, region: str, site: str) -> list[dict]:
    """The top-K table's rows, each with a link to its unit's page (drawn against this site)."""
    rows = top.to_dict("records")
    for row in rows:
        row["unit"] = markdown_link("open", unit_href(dataset, model, row["layer_idx"], row["channel"], row["y"],
                                                      row["x"], region=region, site=site))
    return rows


def site_stats(site_row: pd.Series, scores: dict[str, float], top: pd.DataFrame,
               command: str | None = None) -> html.Div:
    """Reliability, best r and, where computed, the statistics of the site's match."""
    def stat(label, value, fmt="{:.3f}"):
        shown = "not computed" if value is None or pd.isna(value) else fmt.format(value)
        return dbc.Col([html.Div(label, className="stat-label"), html.Div(shown, className="stat-value")], xs=6)

    return dbc.Row([
        stat("best r (in-sample)", float(top["r"].iloc[0]) if len(top) else None),
        stat("split-half reliability", site_row.get("reliability")),
        stat("held-out r", scores.get("heldout_r")),
        stat("match stability", scores.get("stability"), "{:.0%}"),
        stat("p-value (max null)", scores.get("p_value"), "{:.2g}"),
        stat("depth of best unit", float(top["depth"].iloc[0]) if len(top) else None, "{:.2f}"),
        dbc.Col(html.Small(["Held-out r, stability and p come from the cross-validated analyses: run ",
                            html.Code(command), "."], className="text-muted"), xs=12)
        if command and not {"heldout_r", "stability", "p_value"} <= set(scores) else None,
    ], className="g-2")


@dash.callback(
    Output(ids("scatter"), "figure"),
    Output(ids("top-stimuli"), "children"),
    Input(ids("site"), "value"),
    Input(ids("rank"), "value"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
    State(ids("f-region"), "value"),
)
def update_scatter(site, rank, dataset, model, region=None):
    top_k = model_top_k(dataset, model)
    rank = valid_rank(rank, top_k)
    if rank is None:
        message = rank_message(top_k)
        return empty_figure(message), html.Div(message, className="text-muted")
    frame = data.site_scatter(dataset, model, site, int(rank))
    fig = make_site_scatter_figure(frame, site_id=site, model=model, rank=int(rank))
    if frame is None:
        return fig, html.Div("Not available: the unit's activations were not gathered.", className="text-muted")
    by_site = frame.nlargest(N_TOP_STIMULI, "neural")
    by_unit = frame.nlargest(N_TOP_STIMULI, "unit")
    strips = dbc.Row([
        dbc.Col([html.H6(f"{site}: top {N_TOP_STIMULI}"),
                 thumbnail_strip(dataset, by_site.itertuples(), caption=lambda r: f"z {r.neural:.1f}")], lg=6),
        dbc.Col([html.H6([f"unit at rank {rank}: top {N_TOP_STIMULI} ", dcc.Link("(open this unit)", href=unit_href(
            dataset, model, frame.attrs["layer_idx"], frame.attrs["channel"], frame.attrs["y"], frame.attrs["x"],
            region=region, site=site if region else None), className="small")]),
                 thumbnail_strip(dataset, by_unit.itertuples(), caption=lambda r: f"z {r.unit:.1f}")], lg=6),
    ])
    return fig, strips


@dash.callback(
    Output(ids("hover"), "children"),
    Input(ids("scatter"), "hoverData"),
    State(ids("f-dataset"), "value"),
    prevent_initial_call=True,
)
def show_hovered(hover, dataset):
    if not hover or not hover.get("points"):
        return dash.no_update
    point = hover["points"][0]
    stimulus_id, obj = point["customdata"][0], point["customdata"][1]
    return html.Div([html.Img(src=stimulus_src(dataset, stimulus_id), className="img-fluid mb-2",
                              style={"maxWidth": "256px"}),
                     html.Div(f"{obj}: neural {point['x']:.2f}, unit {point['y']:.2f}", className="small")])


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
    return to_query({"dataset": dataset, "model": model, "region": region, "site": site,
                     "rank": None if rank in (None, 1) else rank})


def _export_state(dataset, model, region, site, rank):
    f = data.resolve_filters(dataset, model, region)
    site = data.require_site(f.dataset, site, f.region)
    return f, site, parse_rank(rank, model_top_k(f.dataset, f.model))


@register_export("sites-scatter", "Figure 2: a site against its rank-k unit",
                 ("dataset", "model", "region", "site", "rank"))
def export_scatter(dataset, model, region, site, rank):
    f, site, rank = _export_state(dataset, model, region, site, rank)
    frame = data.site_scatter(f.dataset, f.model, site, rank)
    fig = make_site_scatter_figure(frame, site_id=site, model=f.model, rank=rank)
    return fig, frame if frame is not None else pd.DataFrame()


@register_export("sites-runnerups", "The site's top-K units", ("dataset", "model", "region", "site"))
def export_runnerups(dataset, model, region, site):
    f, site, _ = _export_state(dataset, model, region, site, None)
    top = data.site_matches(f.dataset, f.model, site)
    return make_runnerup_histogram_figure(top, region=f.region), top


@register_export("sites-topk", "The site's top-K units (the table)", ("dataset", "model", "region", "site"),
                 data_only=True)
def export_topk(dataset, model, region, site):
    f, site, _ = _export_state(dataset, model, region, site, None)
    return None, data.site_matches(f.dataset, f.model, site)
