"""What every card of the Sites page shares: ids, the rank rule and the validated view."""

from __future__ import annotations

from backend import data, params
from backend.errors import NotFoundError
from backend.params import Filters
from components.ids import PageIds

ids = PageIds("sites")
PAGE = "sites"
N_TOP_STIMULI = 8


def parse_rank(raw, top_k: int) -> int:
    """The rank from the URL or the rank field: a whole number in 1..top_k (1 when empty)."""
    return params.require_number("rank", raw, 1, top_k, default=1)


def valid_rank(raw, top_k: int) -> int | None:
    """The rank typed into the page's field, or None where it is empty or not a whole number in 1..top_k.

    The browser's number field already gives None for a value outside its min/max/step."""
    if raw in (None, ""):
        return None
    try:
        return parse_rank(raw, top_k)
    except NotFoundError:
        return None


def model_top_k(dataset: str, model: str) -> int:
    return int(data.matched_models(dataset).set_index("model").loc[model, "top_k"])


def rank_message(top_k: int) -> str:
    return f"Enter a rank from 1 to {top_k} (a whole number) to plot the site against its unit at that rank."


def resolve_view(dataset, model, region, site, rank) -> tuple[Filters, str, int]:
    """The URL's filters, site (of the region) and rank, validated (NotFoundError / NotComputedError)."""
    f = params.resolve_filters(dataset, model, region)
    site = params.require_site(f.dataset, site, f.region)
    return f, site, parse_rank(rank, model_top_k(f.dataset, f.model))
