"""The Sites page's layout: the filter bar, the site and rank controls and the cards."""

from __future__ import annotations

from dash import html

from components import empty
from components.filters import filter_bar, register_navigation
from components.urlstate import query_store
from pages.sites.common import PAGE, ids, model_top_k, resolve_view
from pages.sites.scatter import scatter_row, top_stimuli_card
from pages.sites.selection import controls
from pages.sites.site_panel import rf_card
from pages.sites.topk import topk_row


@empty.guarded
def layout(dataset=None, model=None, region=None, site=None, rank=None, **_ignored):
    f, site, rank = resolve_view(dataset, model, region, site, rank)
    top_k = model_top_k(f.dataset, f.model)
    return html.Div(
        [
            html.H2("Sites and their best units"),
            filter_bar(ids, f),
            controls(f.dataset, f.region, site, rank, top_k),
            scatter_row(),
            topk_row(top_k),
            top_stimuli_card(),
            rf_card(),
            *query_store(PAGE),
        ]
    )


register_navigation(ids, "/sites", keep=("site",))
