"""Compare page: two models side by side for the same region and site.

URL: /compare?dataset=...&region=IT&a=MODEL_A&b=MODEL_B&site=...
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html

from backend import data, params
from backend.commands import run_command
from components import empty
from components.exports import card_header, register_export
from components.figures.compare import make_model_pair_figure
from components.figures.sites import make_site_scatter_figure, scatter_limit
from components.ids import PageIds
from components.links import unit_href
from components.theme import GRAPH_CONFIG
from components.urlstate import query_store, to_query

dash.register_page(__name__, path="/compare", name="Compare", order=8, title="Unitscope · Compare")

ids = PageIds("compare")
SECOND_MODEL = "efficientnet-lite1"  # what the note suggests matching when only one model is


def resolve_models(dataset, region, a, b):
    """The filters (model A as their model) and model B: by default the first other matched model."""
    f = params.resolve_filters(dataset, a, region)
    names = data.matched_models(f.dataset)["model"].tolist()
    return f, params.require_model(f.dataset, b, default=next((m for m in names if m != f.model), f.model))


def _controls(f: params.Filters, b: str, site: str, names: list[str]) -> dbc.Row:
    """Models A and B, the region and the site."""
    sites = data.sites(f.dataset)
    regions = data.regions(f.dataset)
    model_options = [{"label": m, "value": m} for m in names]
    return dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("Model A"),
                    dcc.Dropdown(id=ids("a"), value=f.model, options=model_options, clearable=False),
                ],
                md=3,
            ),
            dbc.Col(
                [
                    dbc.Label("Model B"),
                    dcc.Dropdown(id=ids("b"), value=b, options=model_options, clearable=False),
                ],
                md=3,
            ),
            dbc.Col(
                [
                    dbc.Label("Region"),
                    dbc.RadioItems(
                        id=ids("region"),
                        value=f.region,
                        inline=True,
                        options=[{"label": r, "value": r} for r in regions],
                    ),
                ],
                md=2,
            ),
            dbc.Col(
                [
                    dbc.Label("Site"),
                    dcc.Dropdown(
                        id=ids("site"),
                        value=site,
                        clearable=False,
                        options=[{"label": s, "value": s} for s in sites[sites["region"] == f.region]["site_id"]],
                    ),
                ],
                md=4,
            ),
        ],
        className="g-3 mb-3",
    )


@empty.guarded
def layout(dataset=None, region=None, a=None, b=None, site=None, **_ignored):
    f, b = resolve_models(dataset, region, a, b)
    names = data.matched_models(f.dataset)["model"].tolist()
    site = params.require_site(f.dataset, site, f.region)
    only_one = dbc.Alert(
        [
            f"Only {f.model} is matched on {f.dataset}, so both sides show it. Match a second model with ",
            html.Code(run_command(f.dataset, SECOND_MODEL)),
            ".",
        ],
        color="info",
        className="py-2",
    )
    return html.Div(
        [
            html.H2("Compare two models"),
            only_one if len(names) < 2 else None,
            _controls(f, b, site, names),
            dbc.Card(
                [
                    card_header("Best r per site", "compare-pair"),
                    dbc.CardBody(dcc.Loading(dcc.Graph(id=ids("pair"), config=GRAPH_CONFIG))),
                ],
                className="mb-3",
            ),
            html.P(
                "Both scatters share one scale, so the two models' best units can be compared point for point.",
                className="small text-muted mb-2",
            ),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Card(
                            [
                                card_header(html.Span(id=ids("title-a")), "compare-scatter-a"),
                                dbc.CardBody(
                                    [
                                        dcc.Loading(dcc.Graph(id=ids("scatter-a"), config=GRAPH_CONFIG)),
                                        html.Div(id=ids("unit-a"), className="small"),
                                    ]
                                ),
                            ]
                        ),
                        lg=6,
                    ),
                    dbc.Col(
                        dbc.Card(
                            [
                                card_header(html.Span(id=ids("title-b")), "compare-scatter-b"),
                                dbc.CardBody(
                                    [
                                        dcc.Loading(dcc.Graph(id=ids("scatter-b"), config=GRAPH_CONFIG)),
                                        html.Div(id=ids("unit-b"), className="small"),
                                    ]
                                ),
                            ]
                        ),
                        lg=6,
                    ),
                ]
            ),
            dcc.Store(id=ids("dataset"), data=f.dataset),
            dcc.Location(id=ids("nav"), refresh="callback-nav"),
            *query_store("compare"),
        ]
    )


@dash.callback(
    Output(ids("nav"), "href"),
    Input(ids("region"), "value"),
    State(ids("dataset"), "data"),
    State(ids("a"), "value"),
    State(ids("b"), "value"),
    prevent_initial_call=True,
)
def switch_region(region, dataset, a, b):
    """Sites are per region: reopen the page on the new region."""
    return "/compare" + to_query({"dataset": dataset, "region": region, "a": a, "b": b})


@dash.callback(Output(ids("site"), "value"), Input(ids("pair"), "clickData"), prevent_initial_call=True)
def site_from_click(click):
    return click["points"][0]["customdata"] if click and click.get("points") else dash.no_update


# ---------------------------------------------------------------- cards: (figure, frame) of a valid view
def pair_card(dataset: str, region: str, a: str, b: str):
    best_a, best_b = data.best_matches(dataset, a), data.best_matches(dataset, b)
    fig = make_model_pair_figure(best_a, best_b, model_a=a, model_b=b, region=region)
    return fig, best_a.merge(best_b, on=["site_id", "region"], suffixes=("_a", "_b"))


def scatter_cards(dataset: str, a: str, b: str, site: str):
    """Each model's rank-1 unit against the site, on one shared scale (both axes, both figures):
    ((figure, frame) of A, (figure, frame) of B)."""
    frames = [data.site_scatter(dataset, m, site, 1) for m in (a, b)]
    lim = scatter_limit(*frames)
    return tuple(
        (
            make_site_scatter_figure(frame, site_id=site, model=m, rank=1, lim=lim),
            frame if frame is not None else pd.DataFrame(),
        )
        for frame, m in zip(frames, (a, b), strict=True)
    )


def pair_scatters(dataset: str, a: str, b: str, site: str):
    """The two scatters' figures (one shared scale)."""
    return tuple(fig for fig, _ in scatter_cards(dataset, a, b, site))


@dash.callback(
    Output(ids("pair"), "figure"),
    Output(ids("scatter-a"), "figure"),
    Output(ids("scatter-b"), "figure"),
    Output(ids("unit-a"), "children"),
    Output(ids("unit-b"), "children"),
    Output(ids("title-a"), "children"),
    Output(ids("title-b"), "children"),
    Output({"type": "url-query", "page": "compare"}, "data"),
    Input(ids("a"), "value"),
    Input(ids("b"), "value"),
    Input(ids("site"), "value"),
    State(ids("region"), "value"),
    State(ids("dataset"), "data"),
)
def update_compare(a, b, site, region, dataset):
    pair, _ = pair_card(dataset, region, a, b)
    fig_a, fig_b = pair_scatters(dataset, a, b, site)
    units = [unit_link(dataset, m, region, site) for m in (a, b)]
    titles = [f"Model {k}: {m}, the best unit of {site}" for k, m in (("A", a), ("B", b))]
    return (
        pair,
        fig_a,
        fig_b,
        *units,
        *titles,
        to_query({"dataset": dataset, "region": region, "a": a, "b": b, "site": site}),
    )


def unit_link(dataset: str, model: str, region: str, site: str):
    """A link to the model's best unit for the site (its Unit page)."""
    top = data.site_matches(dataset, model, site)
    if top.empty:
        return html.Span("No match for this site.", className="text-muted")
    row = top.iloc[0]
    return dcc.Link(
        f"Open {model}'s unit {row.layer} [c{row.channel}, y{row.y}, x{row.x}] →",
        href=unit_href(dataset, model, row.layer_idx, row.channel, row.y, row.x, region=region, site=site),
    )


# ---------------------------------------------------------------- exports: the same cards, validated
def _export_scatter(dataset, region, a, b, site, which: int):
    f, b = resolve_models(dataset, region, a, b)
    site = params.require_site(f.dataset, site, f.region)
    return scatter_cards(f.dataset, f.model, b, site)[which]


@register_export(
    "compare-scatter-a", "Model A's best unit against the site (shared scale)", ("dataset", "region", "a", "b", "site")
)
def export_scatter_a(dataset, region, a, b, site):
    return _export_scatter(dataset, region, a, b, site, 0)


@register_export(
    "compare-scatter-b", "Model B's best unit against the site (shared scale)", ("dataset", "region", "a", "b", "site")
)
def export_scatter_b(dataset, region, a, b, site):
    return _export_scatter(dataset, region, a, b, site, 1)


@register_export("compare-pair", "Two models' best r per site", ("dataset", "region", "a", "b"))
def export_pair(dataset, region, a, b):
    f, b = resolve_models(dataset, region, a, b)
    return pair_card(f.dataset, f.region, f.model, b)
