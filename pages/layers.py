"""Layers page: where each region's best units are (Figure 6), depth across models (S7) and families (S9).

URL: /layers?dataset=...&model=...&region=V4

Each card is one function of the validated filters returning (figure, the frame it draws): the
callback shows the figures, the exports serve both.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html

from backend import data, params
from backend.params import Filters
from components import empty
from components.exports import card_header, register_export
from components.figures.layers import (
    make_depth_across_models_figure,
    make_family_depth_figure,
    make_layer_histogram_figure,
    make_layer_spread_figure,
)
from components.filters import filter_bar, register_filter_url, register_navigation
from components.ids import PageIds
from components.theme import GRAPH_CONFIG
from components.urlstate import query_store

dash.register_page(__name__, path="/layers", name="Layers", order=3, title="Unitscope · Layers")

ids = PageIds("layers")
FILTERS = ("dataset", "model", "region")


def _graph_card(title: str, export: str, graph: str) -> dbc.Card:
    return dbc.Card(
        [card_header(title, export), dbc.CardBody(dcc.Loading(dcc.Graph(id=ids(graph), config=GRAPH_CONFIG)))]
    )


@empty.guarded
def layout(dataset=None, model=None, region=None, **_ignored):
    f = params.resolve_filters(dataset, model, region)
    return html.Div(
        [
            html.H2("Layers"),
            filter_bar(ids, f),
            dbc.Row(
                [
                    dbc.Col(
                        _graph_card("Best-matched units by layer (Figure 6, left)", "layers-histogram", "hist"), lg=6
                    ),
                    dbc.Col(
                        _graph_card("Best unit within each layer (Figure 6, right)", "layers-spread", "spread"), lg=6
                    ),
                ],
                className="mb-4",
            ),
            dbc.Row(
                [
                    dbc.Col(_graph_card("Depth of matches across models (Figure S7)", "layers-depth", "depth"), lg=6),
                    dbc.Col(_graph_card("A family compared by depth (Figure S9)", "layers-family", "family"), lg=6),
                ],
                className="mb-4",
            ),
            *query_store("layers"),
        ]
    )


register_navigation(ids, "/layers")


update_url = register_filter_url(ids, "layers")


def family_members(dataset: str, model: str) -> list[str]:
    """The matched pretrained models of `model`'s family (e.g. EfficientNet-Lite0/1/2)."""
    matched = data.matched_models(dataset)
    family = matched.set_index("model").loc[model, "family"]
    same = matched[(matched["family"] == family) & (matched["kind"] != "control")]
    return same["model"].tolist() or [model]


# ---------------------------------------------------------------- cards: (figure, frame) of valid filters
def histogram_card(f: Filters):
    best = data.best_matches(f.dataset, f.model)
    return make_layer_histogram_figure(best, data.layers(f.model), region=f.region, model=f.model), best


def spread_card(f: Filters):
    """Figure 6 right, with the random-M control's line where that control is matched."""
    layer_best = data.layer_best(f.dataset, f.model)
    control_name = f"random-{f.model}"
    matched = set(data.matched_models(f.dataset)["model"])
    control = data.layer_best(f.dataset, control_name) if control_name in matched else None
    fig = make_layer_spread_figure(
        layer_best, data.layers(f.model), region=f.region, model=f.model, control=control, control_name=control_name
    )
    return fig, layer_best


def depth_card(dataset: str):
    depth = data.depth_across_models(dataset)
    return make_depth_across_models_figure(depth), depth


def family_card(f: Filters):
    family = {m: data.layer_best(f.dataset, m) for m in family_members(f.dataset, f.model)}
    frame = pd.concat([df.assign(model=m) for m, df in family.items()], ignore_index=True)
    return make_family_depth_figure(family, region=f.region), frame[frame["region"] == f.region]


@dash.callback(
    Output(ids("hist"), "figure"),
    Output(ids("spread"), "figure"),
    Output(ids("depth"), "figure"),
    Output(ids("family"), "figure"),
    Input(ids("f-region"), "value"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
)
def update_layers(region, dataset, model):
    f = Filters(dataset, model, region)
    return histogram_card(f)[0], spread_card(f)[0], depth_card(dataset)[0], family_card(f)[0]


# ---------------------------------------------------------------- exports: the same cards, validated filters
@register_export("layers-histogram", "Figure 6 left: best units per layer", FILTERS)
def export_histogram(dataset, model, region):
    return histogram_card(params.resolve_filters(dataset, model, region))


@register_export("layers-spread", "Figure 6 right: best unit within each layer", FILTERS)
def export_spread(dataset, model, region):
    return spread_card(params.resolve_filters(dataset, model, region))


@register_export("layers-depth", "Figure S7: depth of the matches across models", ("dataset",))
def export_depth(dataset):
    return depth_card(params.require_dataset(dataset))


@register_export("layers-family", "Figure S9: a family compared by depth", FILTERS)
def export_family(dataset, model, region):
    return family_card(params.resolve_filters(dataset, model, region))
