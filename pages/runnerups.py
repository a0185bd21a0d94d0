"""Runner-ups page: every site's top-K r as intensity, with the top-1 line (Figures 7, S10).

URL: /runner-ups?dataset=...&model=...&region=IT
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from backend import data
from components import empty
from components.exports import card_header, register_export
from components.figures.runnerups import make_runnerup_heatmap_figure
from components.filters import filter_bar, register_navigation
from components.ids import PageIds

dash.register_page(__name__, path="/runner-ups", name="Runner-ups", order=4, title="Unitscope · Runner-ups")

ids = PageIds("runnerups")


@empty.guarded
def layout(dataset=None, model=None, region=None, **_ignored):
    f = data.resolve_filters(dataset, model, region)
    return html.Div([
        html.H2("Runner-up units"),
        html.P("Is the best unit alone, or one of many almost as good? Each row is a site; each column a rank.",
               className="text-muted"),
        filter_bar(ids, f),
        dbc.Card([card_header("Top-K r of every site (Figures 7, S10)", "runnerups-heatmap"),
                  dbc.CardBody(dcc.Loading(dcc.Graph(id=ids("heatmap"), config={"displaylogo": False})))]),
    ])


register_navigation(ids, "/runner-ups")


@dash.callback(
    Output(ids("heatmap"), "figure"),
    Input(ids("f-region"), "value"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
)
def update_heatmap(region, dataset, model):
    return make_runnerup_heatmap_figure(data.runner_ups(dataset, model, region), region=region, model=model)


@register_export("runnerups-heatmap", "Figures 7, S10: top-K r of every site", ("dataset", "model", "region"))
def export_heatmap(dataset, model, region):
    f = data.resolve_filters(dataset, model, region)
    frame = data.runner_ups(f.dataset, f.model, f.region)
    return make_runnerup_heatmap_figure(frame, region=f.region, model=f.model), frame
