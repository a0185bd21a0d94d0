"""The Sites page's Figure 2 card (the site against its unit at a rank), the stimuli that drive each most,
and the hovered stimulus."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html

from backend import data
from components.exports import card_header, register_export
from components.figures.sites import make_site_scatter_figure
from components.links import unit_href
from components.stimuli import stimulus_src, thumbnail_strip
from components.theme import GRAPH_CONFIG, empty_figure
from pages.sites.common import N_TOP_STIMULI, ids, model_top_k, rank_message, resolve_view, valid_rank


def scatter_row() -> dbc.Row:
    """The scatter card, beside the site's statistics and the hovered stimulus."""
    return dbc.Row(
        [
            dbc.Col(
                dbc.Card(
                    [
                        card_header("Neural vs unit responses (Figure 2)", "sites-scatter"),
                        dbc.CardBody(
                            dcc.Loading(dcc.Graph(id=ids("scatter"), config=GRAPH_CONFIG, clear_on_unhover=False))
                        ),
                    ]
                ),
                lg=8,
            ),
            dbc.Col(
                [
                    dbc.Card([dbc.CardHeader("Site"), dbc.CardBody(id=ids("stats"))], className="mb-3"),
                    dbc.Card(
                        [
                            dbc.CardHeader("Hovered stimulus"),
                            dbc.CardBody(
                                html.Div(
                                    "Hover a point to see its stimulus.", id=ids("hover"), className="small text-muted"
                                )
                            ),
                        ]
                    ),
                ],
                lg=4,
            ),
        ],
        className="mb-4",
    )


def top_stimuli_card() -> dbc.Card:
    return dbc.Card(
        [
            dbc.CardHeader("The stimuli that drive the site most, and those that drive its unit most"),
            dbc.CardBody(dcc.Loading(html.Div(id=ids("top-stimuli")))),
        ],
        className="mb-4",
    )


def scatter_card(dataset: str, model: str, site: str, rank: int):
    """(figure, frame): the site's responses against its rank-`rank` unit's (frame None: not gathered)."""
    frame = data.site_scatter(dataset, model, site, rank)
    return make_site_scatter_figure(frame, site_id=site, model=model, rank=rank), frame


def top_stimuli_strips(frame: pd.DataFrame, dataset: str, model: str, region, site: str, rank: int) -> dbc.Row:
    by_site = frame.nlargest(N_TOP_STIMULI, "neural")
    by_unit = frame.nlargest(N_TOP_STIMULI, "unit")
    unit_link = dcc.Link(
        "(open this unit)",
        href=unit_href(
            dataset,
            model,
            frame.attrs["layer_idx"],
            frame.attrs["channel"],
            frame.attrs["y"],
            frame.attrs["x"],
            region=region,
            site=site if region else None,
        ),
        className="small",
    )
    return dbc.Row(
        [
            dbc.Col(
                [
                    html.H6(f"{site}: top {N_TOP_STIMULI}"),
                    thumbnail_strip(dataset, by_site.itertuples(), caption=lambda r: f"z {r.neural:.1f}"),
                ],
                lg=6,
            ),
            dbc.Col(
                [
                    html.H6([f"unit at rank {rank}: top {N_TOP_STIMULI} ", unit_link]),
                    thumbnail_strip(dataset, by_unit.itertuples(), caption=lambda r: f"z {r.unit:.1f}"),
                ],
                lg=6,
            ),
        ]
    )


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
    fig, frame = scatter_card(dataset, model, site, int(rank))
    if frame is None:
        return fig, html.Div("Not available: the unit's activations were not gathered.", className="text-muted")
    return fig, top_stimuli_strips(frame, dataset, model, region, site, rank)


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
    return html.Div(
        [
            html.Img(src=stimulus_src(dataset, stimulus_id), className="img-fluid mb-2", style={"maxWidth": "256px"}),
            html.Div(f"{obj}: neural {point['x']:.2f}, unit {point['y']:.2f}", className="small"),
        ]
    )


@register_export(
    "sites-scatter", "Figure 2: a site against its rank-k unit", ("dataset", "model", "region", "site", "rank")
)
def export_scatter(dataset, model, region, site, rank):
    f, site, rank = resolve_view(dataset, model, region, site, rank)
    fig, frame = scatter_card(f.dataset, f.model, site, rank)
    return fig, frame if frame is not None else pd.DataFrame()
