"""Layers page: where each region's best units are (Figure 6), depth across models (S7) and families (S9).

URL: /layers?dataset=...&model=...&region=V4
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html

from backend import data
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
from components.urlstate import query_store

dash.register_page(__name__, path="/layers", name="Layers", order=3, title="Unitscope · Layers")

ids = PageIds("layers")
GRAPH_CONFIG = {"displaylogo": False}


@empty.guarded
def layout(dataset=None, model=None, region=None, **_ignored):
    f = data.resolve_filters(dataset, model, region)
    return html.Div([
        html.H2("Layers"),
        filter_bar(ids, f),
        dbc.Row([
            dbc.Col(dbc.Card([card_header(
                "Best-matched units by layer (Figure 6, left)", "layers-histogram"), dbc.CardBody(
                dcc.Loading(dcc.Graph(id=ids("hist"), config=GRAPH_CONFIG)))]), lg=6),
            dbc.Col(dbc.Card([card_header(
                "Best unit within each layer (Figure 6, right)", "layers-spread"), dbc.CardBody(
                dcc.Loading(dcc.Graph(id=ids("spread"), config=GRAPH_CONFIG)))]), lg=6),
        ], className="mb-4"),
        dbc.Row([
            dbc.Col(dbc.Card([card_header(
                "Depth of matches across models (Figure S7)", "layers-depth"), dbc.CardBody(
                dcc.Loading(dcc.Graph(id=ids("depth"), config=GRAPH_CONFIG)))]), lg=6),
            dbc.Col(dbc.Card([card_header("A family compared by depth (Figure S9)", "layers-family"), dbc.CardBody(
                dcc.Loading(dcc.Graph(id=ids("family"), config=GRAPH_CONFIG)))]), lg=6),
        ], className="mb-4"),
        *query_store("layers"),
    ])


register_navigation(ids, "/layers")


update_url = register_filter_url(ids, "layers")


def family_members(dataset: str, model: str) -> list[str]:
    """The matched pretrained models of `model`'s family (e.g. EfficientNet-Lite0/1/2)."""
    matched = data.matched_models(dataset)
    family = matched.set_index("model").loc[model, "family"]
    same = matched[(matched["family"] == family) & (matched["kind"] != "control")]
    return same["model"].tolist() or [model]


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
    layers = data.layers(model)
    best = data.best_matches(dataset, model)
    layer_best = data.layer_best(dataset, model)
    control_name = f"random-{model}"
    matched = set(data.matched_models(dataset)["model"])
    control = data.layer_best(dataset, control_name) if control_name in matched else None
    family = {m: data.layer_best(dataset, m) for m in family_members(dataset, model)}
    return (
        make_layer_histogram_figure(best, layers, region=region, model=model),
        make_layer_spread_figure(layer_best, layers, region=region, model=model, control=control,
                                 control_name=control_name),
        make_depth_across_models_figure(data.depth_across_models(dataset)),
        make_family_depth_figure(family, region=region),
    )


@register_export("layers-histogram", "Figure 6 left: best units per layer", ("dataset", "model", "region"))
def export_histogram(dataset, model, region):
    f = data.resolve_filters(dataset, model, region)
    best = data.best_matches(f.dataset, f.model)
    return make_layer_histogram_figure(best, data.layers(f.model), region=f.region, model=f.model), best


@register_export("layers-spread", "Figure 6 right: best unit within each layer", ("dataset", "model", "region"))
def export_spread(dataset, model, region):
    f = data.resolve_filters(dataset, model, region)
    layer_best = data.layer_best(f.dataset, f.model)
    fig = make_layer_spread_figure(layer_best, data.layers(f.model), region=f.region, model=f.model)
    return fig, layer_best


@register_export("layers-depth", "Figure S7: depth of the matches across models", ("dataset",))
def export_depth(dataset):
    depth = data.depth_across_models(data.require_dataset(dataset))
    return make_depth_across_models_figure(depth), depth


@register_export("layers-family", "Figure S9: a family compared by depth", ("dataset", "model", "region"))
def export_family(dataset, model, region):
    f = data.resolve_filters(dataset, model, region)
    family = {m: data.layer_best(f.dataset, m) for m in family_members(f.dataset, f.model)}
    frame = pd.concat([df.assign(model=m) for m, df in family.items()], ignore_index=True)
    return make_family_depth_figure(family, region=f.region), frame[frame["region"] == f.region]
