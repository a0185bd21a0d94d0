"""The Dataset page's layout: its header and its cards, restored from the URL's state."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from backend import data
from components import empty
from components.urlstate import query_store
from pages.dataset.common import PAGE, ids
from pages.dataset.correlations import correlations_card
from pages.dataset.gallery import filter_controls, gallery_card, stimulus_modal
from pages.dataset.receptive_fields import rf_card
from pages.dataset.sites_table import sites_card
from pages.dataset.state import validated_state


def header(dataset: str) -> html.Div:
    """Title (with a "synthetic" badge), description and counts."""
    info = data.datasets().set_index("dataset").loc[dataset]
    sites = data.sites(dataset)
    return html.Div(
        [
            html.H2(
                [
                    info["title"] or dataset,
                    " ",
                    dbc.Badge("synthetic", color="warning", className="align-middle fs-6", id=ids("synthetic"))
                    if info["synthetic"]
                    else None,
                ]
            ),
            html.P(info["description"], className="text-muted mb-1"),
            html.P(
                f"{int(info['n_stimuli'])} stimuli · {int(info['n_sites'])} sites · "
                + ", ".join(f"{(sites['region'] == r).sum()} {r}" for r in data.regions(dataset))
                + (f" · {int(info['n_repetitions'])} repetitions" if pd.notna(info["n_repetitions"]) else ""),
                className="small",
            ),
        ]
    )


@empty.guarded
def layout(dataset=None, category=None, object=None, region=None, site=None, page=None, **_ignored):
    state = validated_state(dataset, category, object, region, site, page)
    return html.Div(
        [
            header(state["dataset"]),
            filter_controls(state),
            gallery_card(state),
            sites_card(state["dataset"]),
            correlations_card(state),
            rf_card(state),
            stimulus_modal(),
            dcc.Location(id=ids("nav"), refresh="callback-nav"),
            *query_store(PAGE),
        ]
    )
