"""The global filter bar (dataset, model, region, layer) shared by every results page.

Changing a global filter reopens the page on the new URL (its `layout(**query)` validates and fills in
defaults), so every dependent option list is rebuilt from the database in one place. Page-local state
(site, rank, ...) is carried in the URL by components.urlstate.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, dcc

from backend import data
from backend.params import Filters
from components.ids import PageIds
from components.urlstate import to_query

# Page-local controls whose valid values depend on the region: the site (sites are per region). Every
# other kept control (decoding's variant and condition, feature maps' top, ...) is valid in any region.
REGION_DEPENDENT = frozenset({"site"})


def filter_bar(ids: PageIds, f: Filters, *, with_layer: bool = False) -> dbc.Row:
    datasets = data.datasets()
    models = data.matched_models(f.dataset)
    regions = data.regions(f.dataset)
    cols = [
        dbc.Col(
            [
                dbc.Label("Dataset", html_for=ids("f-dataset")),
                dcc.Dropdown(
                    id=ids("f-dataset"),
                    clearable=False,
                    value=f.dataset,
                    options=[
                        {"label": f"{t or d}{' (synthetic)' if s else ''}", "value": d}
                        for d, t, s in datasets[["dataset", "title", "synthetic"]].itertuples(index=False)
                    ],
                ),
            ],
            md=3,
        ),
        dbc.Col(
            [
                dbc.Label("Model", html_for=ids("f-model")),
                dcc.Dropdown(
                    id=ids("f-model"),
                    clearable=False,
                    value=f.model,
                    options=[
                        {"label": m + (" (control)" if k == "control" else ""), "value": m}
                        for m, k in models[["model", "kind"]].itertuples(index=False)
                    ],
                ),
            ],
            md=3,
        ),
        dbc.Col(
            [
                dbc.Label("Region", html_for=ids("f-region")),
                dbc.RadioItems(
                    id=ids("f-region"), value=f.region, inline=True, options=[{"label": r, "value": r} for r in regions]
                ),
            ],
            md=2,
        ),
    ]
    if with_layer:
        layers = data.layers(f.model)
        cols.append(
            dbc.Col(
                [
                    dbc.Label("Layer", html_for=ids("f-layer")),
                    dcc.Dropdown(
                        id=ids("f-layer"),
                        clearable=False,
                        value=f.layer,
                        options=[
                            {"label": f"{i}: {name} ({c}×{h}×{w})", "value": i}
                            for i, name, c, h, w in layers[
                                ["layer_idx", "layer", "channels", "height", "width"]
                            ].itertuples(index=False)
                        ],
                    ),
                ],
                md=4,
            )
        )
    return dbc.Row([*cols, dcc.Location(id=ids("nav"), refresh="callback-nav")], className="g-3 mb-3 filter-bar")


def register_navigation(ids: PageIds, path: str, *, with_layer: bool = False, keep: tuple[str, ...] = ()) -> None:
    """Reopen the page when a global filter changes; `keep` lists page-local controls to carry along."""
    inputs = [Input(ids("f-dataset"), "value"), Input(ids("f-model"), "value"), Input(ids("f-region"), "value")]
    if with_layer:
        inputs.append(Input(ids("f-layer"), "value"))
    states = [State(ids(k), "value") for k in keep]

    @dash.callback(Output(ids("nav"), "href"), inputs, states, prevent_initial_call=True)
    def navigate(dataset, model, region, *rest):
        layer = rest[0] if with_layer else None
        local = dict(zip(keep, rest[1:] if with_layer else rest, strict=True))
        changed = str(ctx.triggered_id or "").removeprefix(ids("f-"))
        return path + navigation_query(changed, dataset, model, region, layer, local)


def register_filter_url(ids: PageIds, page: str):
    """For a page whose view is its filter bar: the full view (with the defaults the layout filled in) goes
    into the address bar, on first load too. Returns the callback."""

    @dash.callback(
        Output({"type": "url-query", "page": page}, "data"),
        Input(ids("f-region"), "value"),
        State(ids("f-dataset"), "value"),
        State(ids("f-model"), "value"),
    )
    def update_url(region, dataset, model):
        return to_query({"dataset": dataset, "model": model, "region": region})

    return update_url


def navigation_query(changed: str, dataset, model, region, layer, local: dict) -> str:
    """The query of the page to open after filter `changed` changed.

    A new dataset resets everything else; a new model resets the layer (layers are per model); a new
    region resets only the page-local controls that depend on it (REGION_DEPENDENT: the site, as sites
    are per region) and keeps the others.
    """
    if changed == "dataset":
        return to_query({"dataset": dataset, "region": region})
    if changed == "model":
        layer = None
    if changed == "region":
        local = {k: v for k, v in local.items() if k not in REGION_DEPENDENT}
    return to_query({"dataset": dataset, "model": model, "region": region, "layer": layer, **local})
