"""Dataset page: stimuli gallery, sites table, site correlations (Figure S12) and receptive fields (Figure S2).

URL: /dataset?dataset=...&category=...&object=...&page=...&region=V4&site=...
"""

from __future__ import annotations

from urllib.parse import quote

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import ALL, Input, Output, State, ctx, dcc, html

from backend import data
from backend.data import NotFoundError
from components import empty
from components.exports import card_header, export_menu, register_export
from components.figures.dataset import (
    make_reliability_figure,
    make_rf_map_figure,
    make_rf_scatter_figure,
    make_site_correlation_figure,
)
from components.ids import PageIds
from components.theme import empty_figure
from components.urlstate import query_store, to_query

dash.register_page(__name__, path="/dataset", name="Dataset", order=1, title="Unitscope · Dataset")

ids = PageIds("dataset")
PAGE_SIZE = 48
ALL_VALUE = "__all__"
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
GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


# ---------------------------------------------------------------- state helpers (pure, unit-tested)
def filter_stimuli(stimuli: pd.DataFrame, category: str | None, obj: str | None) -> pd.DataFrame:
    out = stimuli
    if category and category != ALL_VALUE:
        out = out[out["category"] == category]
    if obj and obj != ALL_VALUE:
        out = out[out["object"] == obj]
    return out


def page_count(n: int) -> int:
    return max(1, -(-n // PAGE_SIZE))


def parse_page(raw: str | int | None, n_pages: int) -> int:
    """Page number from the URL: an integer in 1..n_pages (else a friendly error)."""
    if raw is None or raw == "":
        return 1
    try:
        page = int(raw)
    except (TypeError, ValueError):
        raise NotFoundError(f"page must be a whole number, got {str(raw)[:40]!r}") from None
    if not 1 <= page <= n_pages:
        raise NotFoundError(f"page {page} is out of range 1..{n_pages}")
    return page


def validated_state(dataset, category, obj, region, site, page) -> dict:
    """Check every URL parameter against the database; raise NotFoundError with a clear message."""
    dataset = data.require_dataset(dataset)
    stimuli = data.stimuli(dataset)
    sites = data.sites(dataset)
    categories = sorted(stimuli["category"].dropna().unique())
    if category not in (None, "", ALL_VALUE) and category not in categories:
        raise NotFoundError(f"unknown category {str(category)[:40]!r}; this dataset has {', '.join(categories)}")
    objects = sorted(filter_stimuli(stimuli, category, None)["object"].dropna().unique())
    if obj not in (None, "", ALL_VALUE) and obj not in objects:
        raise NotFoundError(f"unknown object {str(obj)[:40]!r} for this category")
    regions = list(dict.fromkeys(sites["region"]))
    if region in (None, ""):
        region = regions[0] if regions else None
    elif region not in regions:
        raise NotFoundError(f"unknown region {str(region)[:40]!r}; this dataset has {', '.join(regions)}")
    if site in (None, ""):
        site = sites["site_id"].iloc[0] if len(sites) else None
    elif site not in set(sites["site_id"]):
        raise NotFoundError(f"unknown site {str(site)[:60]!r} in dataset {dataset}")
    n = len(filter_stimuli(stimuli, category, obj))
    return {"dataset": dataset, "category": category or ALL_VALUE, "object": obj or ALL_VALUE,
            "region": region, "site": site, "page": parse_page(page, page_count(n))}


def state_query(dataset, category, obj, page, region, site) -> str:
    return to_query({
        "dataset": dataset,
        "category": None if category == ALL_VALUE else category,
        "object": None if obj == ALL_VALUE else obj,
        "page": None if page in (None, 1) else page,
        "region": region,
        "site": site,
    })


# ---------------------------------------------------------------- layout
@empty.guarded
def layout(dataset=None, category=None, object=None, region=None, site=None, page=None, **_ignored):
    state = validated_state(dataset, category, object, region, site, page)
    ds = state["dataset"]
    info = data.datasets().set_index("dataset").loc[ds]
    stimuli = data.stimuli(ds)
    sites = data.sites(ds)
    categories = sorted(stimuli["category"].dropna().unique())
    objects = sorted(filter_stimuli(stimuli, state["category"], None)["object"].dropna().unique())
    regions = list(dict.fromkeys(sites["region"]))

    header = html.Div([
        html.H2([info["title"] or ds, " ",
                 dbc.Badge("synthetic", color="warning", className="align-middle fs-6", id=ids("synthetic"))
                 if info["synthetic"] else None]),
        html.P(info["description"], className="text-muted mb-1"),
        html.P(f"{int(info['n_stimuli'])} stimuli · {int(info['n_sites'])} sites · "
               + ", ".join(f"{(sites['region'] == r).sum()} {r}" for r in regions)
               + (f" · {int(info['n_repetitions'])} repetitions" if pd.notna(info["n_repetitions"]) else ""),
               className="small"),
    ])
    controls = dbc.Row([
        dbc.Col([dbc.Label("Dataset"), dcc.Dropdown(
            id=ids("dataset"), options=[{"label": t or d, "value": d} for d, t in
                                        data.datasets()[["dataset", "title"]].itertuples(index=False)],
            value=ds, clearable=False)], md=4),
        dbc.Col([dbc.Label("Category"), dcc.Dropdown(
            id=ids("category"), options=[{"label": "All categories", "value": ALL_VALUE}]
            + [{"label": c, "value": c} for c in categories], value=state["category"], clearable=False)], md=4),
        dbc.Col([dbc.Label("Object"), dcc.Dropdown(
            id=ids("object"), options=[{"label": "All objects", "value": ALL_VALUE}]
            + [{"label": o, "value": o} for o in objects], value=state["object"], clearable=False)], md=4),
    ], className="g-3 mb-3")

    gallery_card = dbc.Card([
        dbc.CardHeader(html.Span(id=ids("gallery-title"))),
        dbc.CardBody([
            dcc.Loading(html.Div(id=ids("gallery"), className="stimulus-grid")),
            dbc.Pagination(id=ids("page"), max_value=1, active_page=state["page"], fully_expanded=False,
                           first_last=True, previous_next=True, className="mt-3 mb-0"),
        ]),
    ], className="mb-4")

    sites_card = dbc.Card([
        card_header("Sites", "dataset-sites", data_only=True),
        dbc.CardBody([
            dbc.Row([
                dbc.Col(dag.AgGrid(
                    id=ids("sites-table"),
                    rowData=_site_rows(sites),
                    columnDefs=SITE_COLUMNS,
                    defaultColDef={"sortable": True, "filter": True, "resizable": True, "flex": 1, "minWidth": 100,
                                   "wrapHeaderText": True, "autoHeaderHeight": True},
                    dashGridOptions={"pagination": True, "paginationPageSize": 10,
                                     "paginationPageSizeSelector": False, "rowSelection": {"mode": "singleRow"}},
                    style={"height": 420},
                    className="ag-theme-alpine",
                ), lg=7),
                dbc.Col(dcc.Graph(id=ids("reliability"), figure=make_reliability_figure(sites), config=GRAPH_CONFIG),
                        lg=5),
            ]),
        ]),
    ], className="mb-4")

    corr_card = dbc.Card([
        dbc.CardHeader(dbc.Row([
            dbc.Col([html.Span("Site-by-site response correlation (Figure S12)")], width="auto"),
            dbc.Col(export_menu("dataset-correlations"), width="auto"),
            dbc.Col(dbc.RadioItems(id=ids("region"), options=[{"label": r, "value": r} for r in regions],
                                   value=state["region"], inline=True), width="auto"),
        ], justify="between")),
        dbc.CardBody(dcc.Loading(dcc.Graph(id=ids("corr"), config=GRAPH_CONFIG))),
    ], className="mb-4")

    rf_card = dbc.Card([
        dbc.CardHeader("Receptive fields (Figure S2): mapped with 1° squares on an 8×8 grid"),
        dbc.CardBody([
            dbc.Row([dbc.Col([dbc.Label("Site"), dcc.Dropdown(
                id=ids("site"), options=[{"label": f"{s} ({r})", "value": s}
                                         for s, r in sites[["site_id", "region"]].itertuples(index=False)],
                value=state["site"], clearable=False)], md=6)], className="mb-2"),
            dbc.Row([
                dbc.Col(dcc.Loading(dcc.Graph(id=ids("rf-map"), config=GRAPH_CONFIG)), lg=6),
                dbc.Col(dcc.Graph(id=ids("rf-scatter"), figure=make_rf_scatter_figure(sites), config=GRAPH_CONFIG),
                        lg=6),
            ]),
        ]),
    ], className="mb-4")

    modal = dbc.Modal([dbc.ModalHeader(dbc.ModalTitle(id=ids("modal-title"))), dbc.ModalBody(id=ids("modal-body"))],
                      id=ids("modal"), size="lg", is_open=False)

    return html.Div([header, controls, gallery_card, sites_card, corr_card, rf_card, modal,
                     dcc.Location(id=ids("nav"), refresh="callback-nav"), *query_store("dataset")])


SITE_TABLE_COLUMNS = ["site_id", "region", "subregion", "reliability", "rf_x_deg", "rf_y_deg", "rf_size_deg"]


def _site_rows(sites: pd.DataFrame) -> list[dict]:
    cols = SITE_TABLE_COLUMNS
    return sites[cols].astype(object).where(sites[cols].notna(), None).to_dict("records")


def _thumb(dataset: str, row) -> html.Div:
    return html.Div(
        html.Img(src=f"/stimulus/{quote(dataset, safe='')}/{quote(row.stimulus_id, safe='')}.png",
                 alt=f"{row.category} / {row.object}", title=f"{row.object} ({row.category})"),
        id=ids.match("thumb", row.stimulus_id), n_clicks=0, className="stimulus-thumb", role="button",
    )


# ---------------------------------------------------------------- callbacks
@dash.callback(
    Output(ids("object"), "options"),
    Output(ids("object"), "value"),
    Input(ids("category"), "value"),
    State(ids("dataset"), "value"),
    State(ids("object"), "value"),
    prevent_initial_call=True,
)
def update_objects(category, dataset, current):
    stimuli = data.stimuli(dataset)
    objects = sorted(filter_stimuli(stimuli, category, None)["object"].dropna().unique())
    options = [{"label": "All objects", "value": ALL_VALUE}] + [{"label": o, "value": o} for o in objects]
    return options, current if current in objects else ALL_VALUE


@dash.callback(
    Output(ids("gallery"), "children"),
    Output(ids("gallery-title"), "children"),
    Output(ids("page"), "max_value"),
    Output(ids("page"), "active_page"),
    Input(ids("dataset"), "value"),
    Input(ids("category"), "value"),
    Input(ids("object"), "value"),
    Input(ids("page"), "active_page"),
)
def update_gallery(dataset, category, obj, page):
    reset = ctx.triggered_id in (ids("category"), ids("object"), ids("dataset"))
    return gallery_view(dataset, category, obj, 1 if reset else page)


def gallery_view(dataset: str, category: str, obj: str, page: int | None):
    """Thumbnails of one page of the filtered stimuli, the card title, the page count and the page."""
    stimuli = filter_stimuli(data.stimuli(dataset), category, obj)
    n_pages = page_count(len(stimuli))
    page = min(max(int(page or 1), 1), n_pages)
    shown = stimuli.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    label = "all categories" if category in (None, ALL_VALUE) else category
    if obj not in (None, ALL_VALUE):
        label += f" / {obj}"
    title = f"Stimuli: {len(stimuli)} of {label} (click one to enlarge)"
    return [_thumb(dataset, row) for row in shown.itertuples()], title, n_pages, page


@dash.callback(
    Output(ids("modal"), "is_open"),
    Output(ids("modal-title"), "children"),
    Output(ids("modal-body"), "children"),
    Input(ids.match("thumb", ALL), "n_clicks"),
    State(ids("dataset"), "value"),
    prevent_initial_call=True,
)
def open_stimulus(clicks, dataset):
    trigger = ctx.triggered_id
    if not trigger or not any(clicks or []):
        return dash.no_update, dash.no_update, dash.no_update
    stimulus_id = trigger["index"]
    stimuli = data.stimuli(dataset)
    row = stimuli[stimuli["stimulus_id"] == stimulus_id]
    if row.empty:
        return True, "Unknown stimulus", empty.friendly_error("this stimulus is not in the dataset")
    meta = row.iloc[0]
    fields = [("stimulus_id", "id"), ("category", "category"), ("object", "object"), ("variation", "variation"),
              ("ty", "position ty"), ("tz", "position tz"), ("s", "scale"), ("rxy", "rotation xy (°)"),
              ("rxz", "rotation xz (°)"), ("ryz", "rotation yz (°)"), ("background_id", "background")]
    table = dbc.Table([html.Tbody([html.Tr([html.Th(label), html.Td(_fmt(meta[col]))])
                                   for col, label in fields if col in meta.index])],
                      size="sm", className="small stimulus-meta")
    body = dbc.Row([
        dbc.Col(html.Img(src=f"/stimulus/{quote(dataset, safe='')}/{quote(stimulus_id, safe='')}.png",
                         className="img-fluid stimulus-large"), md=6),
        dbc.Col(table, md=6),
    ])
    return True, f"{meta['object']} ({meta['category']})", body


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


@dash.callback(
    Output(ids("site"), "value"),
    Input(ids("sites-table"), "selectedRows"),
    prevent_initial_call=True,
)
def select_site_from_table(rows):
    if not rows:
        return dash.no_update
    return rows[0]["site_id"]


@dash.callback(Output(ids("nav"), "href"), Input(ids("dataset"), "value"), prevent_initial_call=True)
def switch_dataset(dataset):
    """Another dataset changes every control's options: reopen the page on it."""
    return "/dataset" + to_query({"dataset": dataset})


@dash.callback(Output(ids("corr"), "figure"), Input(ids("dataset"), "value"), Input(ids("region"), "value"))
def update_correlations(dataset, region):
    if not region:
        return empty_figure("Pick a region")
    return make_site_correlation_figure(data.site_correlations(dataset, region), region=region)


@dash.callback(Output(ids("rf-map"), "figure"), Input(ids("dataset"), "value"), Input(ids("site"), "value"))
def update_rf_map(dataset, site):
    if not site:
        return empty_figure("Pick a site")
    frame = data.site_rf(dataset, site)
    return make_rf_map_figure(frame.iloc[0] if len(frame) else None, site_id=site)


@dash.callback(
    Output({"type": "url-query", "page": "dataset"}, "data"),
    Input(ids("dataset"), "value"),
    Input(ids("category"), "value"),
    Input(ids("object"), "value"),
    Input(ids("page"), "active_page"),
    Input(ids("region"), "value"),
    Input(ids("site"), "value"),
)
def update_url(dataset, category, obj, page, region, site):
    return state_query(dataset, category, obj, page, region, site)


@register_export("dataset-correlations", "Figure S12: site-by-site response correlation", ("dataset", "region"))
def export_correlations(dataset, region):
    dataset = data.require_dataset(dataset)
    regions = list(dict.fromkeys(data.sites(dataset)["region"]))
    region = region or regions[0]
    if region not in regions:
        raise NotFoundError(f"unknown region {str(region)[:40]!r}")
    frame = data.site_correlations(dataset, region)
    return make_site_correlation_figure(frame, region=region), frame


@register_export("dataset-sites", "The dataset's sites (the table)", ("dataset",), data_only=True)
def export_sites(dataset):
    return None, data.sites(data.require_dataset(dataset))[SITE_TABLE_COLUMNS]
