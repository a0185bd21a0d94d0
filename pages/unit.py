"""Unit page: one unit of a model, the sites it is matched to, its responses and its receptive field.

URL: /unit?dataset=...&model=...&region=V4&layer_idx=12&channel=5&y=3&x=4&site=...
(`y` and `x` default to 0; with no unit named, the region's best-matched unit is shown; `site` picks the
site its scatter is drawn against, by default the region's site that ranks it best.)
"""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, ctx, dcc, html

from backend import data, params
from backend.commands import precompute, rf_command
from backend.errors import NotFoundError
from backend.params import Filters, Unit
from components import empty
from components.exports import card_header, register_export
from components.figures.sites import make_site_scatter_figure, make_unit_rf_figure
from components.figures.unit import make_unit_category_figure
from components.filters import filter_bar
from components.ids import PageIds
from components.links import LINK_COLUMN, markdown_link, site_href
from components.stimuli import thumbnail_strip
from components.theme import GRAPH_CONFIG, GRID_COLUMNS, GRID_PAGINATION, empty_figure
from components.urlstate import query_store, to_query

dash.register_page(__name__, path="/unit", name="Unit", order=9, title="Unitscope · Unit")

ids = PageIds("unit")
N_TOP_STIMULI = 12
UNIT_PARAMS = ("layer_idx", "channel", "y", "x")
_R = {"function": "params.value == null ? '' : d3.format('.4f')(params.value)"}
SITE_COLUMNS = [
    {"field": "site", "headerName": "site", "minWidth": 150, **LINK_COLUMN},
    {"field": "region", "headerName": "region", "minWidth": 110, "maxWidth": 130},
    {"field": "rank", "headerName": "rank (model)", "maxWidth": 140},
    {"field": "layer_rank", "headerName": "rank (layer)", "maxWidth": 130},
    {"field": "featuremap_best", "headerName": "best of its feature map", "maxWidth": 200},
    {"field": "r", "headerName": "r", "valueFormatter": _R, "maxWidth": 120},
]


def resolve_unit(dataset, model, region, layer_idx, channel, y, x) -> tuple[Filters, Unit]:
    """Validate the URL's filters and unit against this build (NotFoundError for anything unknown)."""
    f = params.resolve_filters(dataset, model, region)
    if all(v in (None, "") for v in (layer_idx, channel, y, x)):
        default = data.default_unit(f.dataset, f.model, f.region)
        if default is None:
            raise NotFoundError(
                f"no {f.region} site has a match under {f.model}: name a unit with layer_idx, channel, y and x"
            )
        layer_idx, channel, y, x = default
    return f, params.require_unit(f.model, layer_idx, channel, y, x)


def default_site(f: Filters, unit: Unit, site: str | None) -> str:
    """The requested site (validated), else the region's site that ranks this unit best, else its first."""
    if site not in (None, ""):
        return params.require_site(f.dataset, site, f.region)
    matched = data.unit_sites(f.dataset, f.model, *unit.key())
    matched = matched[matched["region"] == f.region]
    return matched["site_id"].iloc[0] if len(matched) else params.require_site(f.dataset, None, f.region)


def breakable(name: str) -> list:
    """A dotted layer name that may wrap after its dots (html.Wbr), not mid-word: blocks.1.1.bn1.act."""
    parts = str(name).split(".")
    out: list = []
    for i, part in enumerate(parts):
        out.append(part if i == len(parts) - 1 else part + ".")
        if i < len(parts) - 1:
            out.append(html.Wbr())
    return out


def _identity(f: Filters, unit: Unit, n_sites: int) -> dbc.Card:
    def fact(label, value):
        return dbc.Col(
            [html.Div(label, className="stat-label"), html.Div(value, className="stat-value")], xs=6, md=4, lg=2
        )

    return dbc.Card(
        [
            dbc.CardHeader("This unit"),
            dbc.CardBody(
                dbc.Row(
                    [
                        fact("model", f.model),
                        fact(
                            "layer",
                            html.Span(
                                [*breakable(unit.layer), html.Small(f" (#{unit.layer_idx})", className="text-muted")]
                            ),
                        ),
                        fact("depth", f"{unit.depth:.2f}"),
                        fact("channel (feature map)", f"{unit.channel} of {unit.channels}"),
                        fact("position (y, x)", f"{unit.y}, {unit.x} in {unit.height}×{unit.width}"),
                        fact("sites matched", f"{n_sites}"),
                    ],
                    className="g-2",
                    id=ids("identity"),
                )
            ),
        ],
        className="mb-3",
    )


def _site_options(f: Filters, unit: Unit, matched: pd.DataFrame) -> list[dict]:
    """The scatter's site choices: sites that have the unit in a top-K list first, best first (with that
    rank and r); then the region's other sites in site order."""
    ranks = {row.site_id: row for row in matched.itertuples()}
    sites = data.sites(f.dataset)
    region_sites = sites[sites["region"] == f.region]["site_id"].tolist()
    ordered = [s for s in matched["site_id"] if s in set(region_sites)]
    ordered += [s for s in region_sites if s not in ranks]

    def option_label(s: str) -> str:
        row = ranks.get(s)
        if row is None:
            return s
        if pd.notna(row.rank):
            where = f"rank {row.rank}"
        else:
            where = f"layer rank {row.layer_rank}" if pd.notna(row.layer_rank) else "best of its feature map"
        return f"{s} ({where}, r {row.r:.3f})"

    return [{"label": option_label(s), "value": s} for s in ordered]


SITES_HELP = (
    "Click a site to open it on the Sites page. Rank (model): its rank among the site's top-K units of the "
    "whole model; rank (layer): within this layer; best of its feature map: the site's best unit of this channel."
)


def _sites_card(matched: pd.DataFrame) -> dbc.Card:
    none = dbc.Alert(
        "No site has this unit in any of its top-K lists (whole model, layer or feature map): "
        "it is shown for its responses only.",
        color="light",
        className="py-2 small",
    )
    grid = dag.AgGrid(
        id=ids("sites"),
        columnDefs=SITE_COLUMNS,
        rowData=[],
        defaultColDef=GRID_COLUMNS,
        dashGridOptions=GRID_PAGINATION,
        style={"height": 380},
        className="ag-theme-alpine",
    )
    title = "Sites this unit is matched to (rank and r in each site's top-K lists)"
    return dbc.Card(
        [
            card_header(title, "unit-sites", data_only=True),
            dbc.CardBody(
                [none if matched.empty else None, html.P(SITES_HELP, className="small text-muted"), dcc.Loading(grid)]
            ),
        ],
        className="mb-4",
    )


def _graph_card(title, export: str, body, *, data_only: bool = False) -> dbc.Col:
    return dbc.Col(dbc.Card([card_header(title, export, data_only=data_only), dbc.CardBody(body)]), lg=6)


def _figure_rows(site: str, options: list[dict]) -> list[dbc.Row]:
    picker = dbc.Row(
        [
            dbc.Col(dbc.Label("Site", html_for=ids("site")), width="auto"),
            dbc.Col(dcc.Dropdown(id=ids("site"), clearable=False, value=site, options=options)),
        ],
        className="g-2 mb-2",
        align="center",
    )
    return [
        dbc.Row(
            [
                _graph_card(
                    "Responses against a site (Figure 2)",
                    "unit-scatter",
                    [picker, dcc.Loading(dcc.Graph(id=ids("scatter"), config=GRAPH_CONFIG))],
                ),
                _graph_card(
                    "Responses per category",
                    "unit-categories",
                    dcc.Loading(dcc.Graph(id=ids("categories"), config=GRAPH_CONFIG)),
                ),
            ],
            className="mb-4",
        ),
        dbc.Row(
            [
                _graph_card(
                    f"The {N_TOP_STIMULI} stimuli that drive this unit most",
                    "unit-top-stimuli",
                    dcc.Loading(html.Div(id=ids("top-stimuli"))),
                    data_only=True,
                ),
                _graph_card(
                    "Receptive field (Figure S2)", "unit-rf", dcc.Loading(dcc.Graph(id=ids("rf"), config=GRAPH_CONFIG))
                ),
            ],
            className="mb-4",
        ),
    ]


@empty.guarded
def layout(dataset=None, model=None, region=None, layer_idx=None, channel=None, y=None, x=None, site=None, **_ignored):
    f, unit = resolve_unit(dataset, model, region, layer_idx, channel, y, x)
    site = default_site(f, unit, site)
    matched = data.unit_sites(f.dataset, f.model, *unit.key())
    return html.Div(
        [
            html.H2(["Unit ", html.Small(f"{f.model} · {unit.label}", className="text-muted")]),
            filter_bar(ids, f),
            _identity(f, unit, len(matched)),
            _sites_card(matched),
            *_figure_rows(site, _site_options(f, unit, matched)),
            dcc.Store(id=ids("unit"), data=dict(zip(UNIT_PARAMS, unit.key(), strict=True))),
            *query_store("unit"),
        ]
    )


@dash.callback(
    Output(ids("nav"), "href"),
    Input(ids("f-dataset"), "value"),
    Input(ids("f-model"), "value"),
    Input(ids("f-region"), "value"),
    State(ids("unit"), "data"),
    prevent_initial_call=True,
)
def navigate(dataset, model, region, unit):
    """Reopen the page on a new filter: a new region keeps the unit (and picks a site of that region);
    a new dataset or model shows that model's best-matched unit (unit coordinates are per model)."""
    return "/unit" + navigation_query(str(ctx.triggered_id or "").removeprefix(ids("f-")), dataset, model, region, unit)


def navigation_query(changed: str, dataset, model, region, unit: dict | None) -> str:
    if changed == "dataset":
        return to_query({"dataset": dataset, "region": region})
    if changed == "model":
        return to_query({"dataset": dataset, "model": model, "region": region})
    return to_query({"dataset": dataset, "model": model, "region": region, **(unit or {})})


def _unit_from_store(model: str, unit: dict) -> Unit:
    return params.require_unit(model, *(unit.get(k) for k in UNIT_PARAMS))


# ---------------------------------------------------------------- cards: (figure, frame) of a valid unit
def categories_card(dataset: str, model: str, unit: Unit):
    activity = data.unit_activity(dataset, model, *unit.key())
    fig = make_unit_category_figure(activity, model=model, unit_label=unit.label)
    return fig, activity if activity is not None else pd.DataFrame()


def top_stimuli_card(dataset: str, model: str, unit: Unit):
    """The strip of the stimuli that drive the unit most, and their rows."""
    activity = data.unit_activity(dataset, model, *unit.key())
    if activity is None:
        return html.Div(
            "Not available: this unit's activations were not gathered (the gather pass stores every "
            f"site's top-K units; `{precompute('rf', '--unit', '...')}` gathers any unit).",
            className="text-muted",
        ), pd.DataFrame()
    top = activity.nlargest(N_TOP_STIMULI, "activation")
    return thumbnail_strip(dataset, top.itertuples(), caption=lambda r: f"{r.object}: {r.activation:.2f}"), top


def rf_card(dataset: str, model: str, unit: Unit):
    rf = data.unit_rf(dataset, model, *unit.key())
    if rf.empty:
        return empty_figure(
            "This unit's receptive field was not computed: run " + rf_command(dataset, model, unit.key()), height=420
        ), rf.drop(columns=["map"])
    site_id = next((s for s in rf["site_id"] if isinstance(s, str)), None)
    site_row = data.sites(dataset).set_index("site_id").loc[site_id] if site_id else None
    title = f"{unit.label}" + (f" and the field of {site_id}, the site it is the best unit of" if site_id else "")
    return make_unit_rf_figure(rf, site_row, site_id=site_id or "", model=model, title=title), rf.drop(columns=["map"])


def sites_table(dataset: str, model: str, unit: Unit) -> pd.DataFrame:
    return data.unit_sites(dataset, model, *unit.key())


@dash.callback(
    Output(ids("sites"), "rowData"),
    Output(ids("categories"), "figure"),
    Output(ids("top-stimuli"), "children"),
    Output(ids("rf"), "figure"),
    Input(ids("unit"), "data"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
    State(ids("f-region"), "value"),
)
def update_unit(unit_data, dataset, model, region):
    """Everything that depends on the unit alone: its sites, its responses per category, the stimuli
    that drive it most and its receptive field."""
    unit = _unit_from_store(model, unit_data)
    rows = site_rows(sites_table(dataset, model, unit), dataset, model)
    return (
        rows,
        categories_card(dataset, model, unit)[0],
        top_stimuli_card(dataset, model, unit)[0],
        rf_card(dataset, model, unit)[0],
    )


def site_rows(frame: pd.DataFrame, dataset: str, model: str) -> list[dict]:
    """Table rows with each site as a link to its view (at the rank the unit has there)."""
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for row in rows:
        row["site"] = markdown_link(
            row["site_id"], site_href(dataset, model, row["region"], row["site_id"], row["rank"])
        )
    return rows


@dash.callback(
    Output(ids("scatter"), "figure"),
    Output({"type": "url-query", "page": "unit"}, "data"),
    Input(ids("site"), "value"),
    State(ids("unit"), "data"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
    State(ids("f-region"), "value"),
)
def update_scatter(site, unit_data, dataset, model, region):
    unit = _unit_from_store(model, unit_data)
    site = default_site(Filters(dataset, model, region), unit, site)
    query = to_query(
        {
            "dataset": dataset,
            "model": model,
            "region": region,
            **dict(zip(UNIT_PARAMS, unit.key(), strict=True)),
            "site": site,
        }
    )
    return scatter_card(dataset, model, unit, site)[0], query


def scatter_card(dataset: str, model: str, unit: Unit, site: str):
    frame = data.unit_scatter(dataset, model, *unit.key(), site)
    if frame is not None:
        frame.attrs["layer"] = unit.layer
    title = None if frame is None else f"{site} vs this unit: r = {frame.attrs['r']:.3f} over {len(frame)} stimuli"
    fig = make_site_scatter_figure(frame, site_id=site, model=model, rank=None, title=title)
    return fig, frame if frame is not None else pd.DataFrame()


# ---------------------------------------------------------------- exports: the same cards, validated
EXPORT_PARAMS = ("dataset", "model", "region", *UNIT_PARAMS)


@register_export("unit-scatter", "A unit against a site (Figure 2)", (*EXPORT_PARAMS, "site"))
def export_scatter(dataset, model, region, layer_idx, channel, y, x, site):
    f, unit = resolve_unit(dataset, model, region, layer_idx, channel, y, x)
    return scatter_card(f.dataset, f.model, unit, default_site(f, unit, site))


@register_export("unit-categories", "A unit's activation per stimulus", EXPORT_PARAMS)
def export_categories(dataset, model, region, layer_idx, channel, y, x):
    f, unit = resolve_unit(dataset, model, region, layer_idx, channel, y, x)
    return categories_card(f.dataset, f.model, unit)


@register_export("unit-rf", "A unit's receptive field (Figure S2)", EXPORT_PARAMS)
def export_rf(dataset, model, region, layer_idx, channel, y, x):
    f, unit = resolve_unit(dataset, model, region, layer_idx, channel, y, x)
    return rf_card(f.dataset, f.model, unit)


@register_export("unit-sites", "The sites a unit is matched to", EXPORT_PARAMS, data_only=True)
def export_sites(dataset, model, region, layer_idx, channel, y, x):
    f, unit = resolve_unit(dataset, model, region, layer_idx, channel, y, x)
    return None, sites_table(f.dataset, f.model, unit)


@register_export("unit-top-stimuli", "The stimuli that drive a unit most", EXPORT_PARAMS, data_only=True)
def export_top_stimuli(dataset, model, region, layer_idx, channel, y, x):
    f, unit = resolve_unit(dataset, model, region, layer_idx, channel, y, x)
    return None, top_stimuli_card(f.dataset, f.model, unit)[1]
