"""Runner-ups page: every site's top-K r as intensity, with the top-1 line (Figures 7, S10).

URL: /runner-ups?dataset=...&model=...&region=IT
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from backend import data, params
from backend.params import Filters
from components import empty
from components.exports import card_header, register_export
from components.figures.runnerups import make_runnerup_heatmap_figure
from components.filters import filter_bar, register_filter_url, register_navigation
from components.ids import PageIds
from components.links import site_href, unit_href
from components.theme import GRAPH_CONFIG
from components.urlstate import query_store

dash.register_page(__name__, path="/runner-ups", name="Runner-ups", order=4, title="Unitscope · Runner-ups")

ids = PageIds("runnerups")


@empty.guarded
def layout(dataset=None, model=None, region=None, **_ignored):
    f = params.resolve_filters(dataset, model, region)
    return html.Div(
        [
            html.H2("Runner-up units"),
            html.P(
                "Is the best unit alone, or one of many almost as good? Each row is a site; each column a rank.",
                className="text-muted",
            ),
            filter_bar(ids, f),
            dbc.Card(
                [
                    card_header("Top-K r of every site (Figures 7, S10)", "runnerups-heatmap"),
                    dbc.CardBody(
                        [
                            dcc.Loading(dcc.Graph(id=ids("heatmap"), config=GRAPH_CONFIG)),
                            html.Div(
                                "Click a cell to open that unit.", id=ids("selected"), className="small text-muted"
                            ),
                        ]
                    ),
                ]
            ),
            *query_store("runnerups"),
        ]
    )


register_navigation(ids, "/runner-ups")


update_url = register_filter_url(ids, "runnerups")


@dash.callback(
    Output(ids("heatmap"), "figure"),
    Input(ids("f-region"), "value"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
)
def update_heatmap(region, dataset, model):
    return heatmap_card(Filters(dataset, model, region))[0]


def heatmap_card(f: Filters):
    """The card's (figure, frame), for the callback and the export alike."""
    frame = data.runner_ups(f.dataset, f.model, f.region)
    return make_runnerup_heatmap_figure(frame, region=f.region, model=f.model), frame


@register_export("runnerups-heatmap", "Figures 7, S10: top-K r of every site", ("dataset", "model", "region"))
def export_heatmap(dataset, model, region):
    return heatmap_card(params.resolve_filters(dataset, model, region))


@dash.callback(
    Output(ids("selected"), "children"),
    Input(ids("heatmap"), "clickData"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
    State(ids("f-region"), "value"),
    prevent_initial_call=True,
)
def open_clicked(click, dataset, model, region):
    """A clicked cell (site, rank) -> links to that unit's page and to the site's view at that rank."""
    point = (click or {}).get("points", [{}])[0]
    if point.get("curveNumber", 0) != 0 or "customdata" not in point:
        return dash.no_update
    site, rank = params.require_site(dataset, point["customdata"], region), int(point["x"])
    top = data.site_matches(dataset, model, site)
    row = top[top["rank"] == rank]
    if row.empty:
        return dash.no_update
    row = row.iloc[0]
    return html.Span(
        [
            f"{site}, rank {rank}: {row.layer} [c{row.channel}, y{row.y}, x{row.x}], r = {row.r:.3f} · ",
            dcc.Link(
                "open this unit",
                href=unit_href(dataset, model, row.layer_idx, row.channel, row.y, row.x, region=region, site=site),
            ),
            " · ",
            dcc.Link("open the site", href=site_href(dataset, model, region, site, rank)),
        ]
    )
