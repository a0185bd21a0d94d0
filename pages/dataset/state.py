"""The Dataset page's URL state: every parameter checked against the database, and written back."""

from __future__ import annotations

import dash
from dash import Input, Output

from backend import data, params
from components.urlstate import to_query
from pages.dataset.common import ALL_VALUE, PAGE_SIZE, filter_stimuli, ids


def page_count(n: int) -> int:
    return max(1, -(-n // PAGE_SIZE))


def parse_page(raw: str | int | None, n_pages: int) -> int:
    """Page number from the URL: an integer in 1..n_pages (else a friendly error)."""
    return params.require_number("page", raw, 1, n_pages, default=1)


def validated_state(dataset, category, obj, region, site, page) -> dict:
    """Check every URL parameter against the database; raise NotFoundError with a clear message."""
    dataset = params.require_dataset(dataset)
    stimuli = data.stimuli(dataset)
    has_sites = len(data.sites(dataset)) > 0
    categories = sorted(stimuli["category"].dropna().unique())
    category = params.require_choice(
        "category", category, [ALL_VALUE, *categories], ALL_VALUE, unknown=f"; this dataset has {', '.join(categories)}"
    )
    objects = sorted(filter_stimuli(stimuli, category, None)["object"].dropna().unique())
    obj = params.require_choice("object", obj, [ALL_VALUE, *objects], ALL_VALUE, unknown=" for this category")
    n = len(filter_stimuli(stimuli, category, obj))
    return {
        "dataset": dataset,
        "category": category,
        "object": obj,
        "region": params.require_region(dataset, region) if has_sites or region else None,
        "site": params.require_site(dataset, site) if has_sites or site else None,
        "page": parse_page(page, page_count(n)),
    }


def state_query(dataset, category, obj, page, region, site) -> str:
    return to_query(
        {
            "dataset": dataset,
            "category": None if category == ALL_VALUE else category,
            "object": None if obj == ALL_VALUE else obj,
            "page": None if page in (None, 1) else page,
            "region": region,
            "site": site,
        }
    )


@dash.callback(
    Output({"type": "url-query", "page": "dataset"}, "data"),
    Input(ids("dataset"), "value"),
    Input(ids("category"), "value"),
    Input(ids("object"), "value"),
    Input(ids("page"), "active_page"),
    Input(ids("region"), "value"),
    Input(ids("site"), "value"),
)
def update_url(dataset, category, obj, page, region, site):
    return state_query(dataset, category, obj, page, region, site)


@dash.callback(Output(ids("nav"), "href"), Input(ids("dataset"), "value"), prevent_initial_call=True)
def switch_dataset(dataset):
    """Another dataset changes every control's options: reopen the page on it."""
    return "/dataset" + to_query({"dataset": dataset})
