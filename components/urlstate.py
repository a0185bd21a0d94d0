"""Every view is a link: pages write their state into the URL's query string.

A page keeps a `dcc.Store` whose data is the query string of its current state (computed by a server
callback from its controls with `to_query`); one clientside callback writes it into the address bar
with `history.replaceState`, which does not re-render the page (Dash's page router only reacts to its
own location component). Reopening the link calls the page's `layout(**query)`, which restores it.
"""

from __future__ import annotations

from urllib.parse import urlencode

import dash
from dash import MATCH, Input, Output, dcc


def query_store(page: str) -> list:
    """The two invisible components a page needs for URL sync."""
    return [dcc.Store(id={"type": "url-query", "page": page}), dcc.Store(id={"type": "url-query-sink", "page": page})]


def to_query(state: dict[str, object]) -> str:
    """`?a=1&b=x` from a dict, leaving out empty values; keys keep their order."""
    items = [(k, str(v)) for k, v in state.items() if v is not None and v != "" and v != []]
    return "?" + urlencode(items) if items else ""


dash.clientside_callback(
    """
    function(search) {
        if (typeof search !== 'string') { return window.dash_clientside.no_update; }
        const url = window.location.pathname + search + window.location.hash;
        if (url !== window.location.pathname + window.location.search + window.location.hash) {
            window.history.replaceState(window.history.state, '', url);
        }
        return search;
    }
    """,
    Output({"type": "url-query-sink", "page": MATCH}, "data"),
    Input({"type": "url-query", "page": MATCH}, "data"),
)
