"""The page for an unknown address: says which path is unknown and links to every page.

Dash's pages router shows the layout of a module named `not_found_404` for any path no page claims.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

# hidden: the shell's navbar leaves it out
dash.register_page(__name__, path="/404", name="Page not found", title="Unitscope · Page not found", hidden=True)


def _requested_path() -> str | None:
    """The unknown path, from the router callback that is rendering this layout (None outside one)."""
    try:
        return dash.ctx.inputs.get("_pages_location.pathname")
    except Exception:  # no callback context (a test, a layout check): no path to name
        return None


def not_found(path: str | None, pages=None) -> dbc.Alert:
    pages = dash.page_registry.values() if pages is None else pages
    links = [html.Li(dcc.Link(page["name"], href=page["relative_path"])) for page in pages if not page.get("hidden")]
    what = ["There is no page at ", html.Code(str(path)[:200]), "."] if path else ["There is no such page."]
    return dbc.Alert(
        [
            html.H4("Page not found", className="alert-heading"),
            html.P(what),
            html.P(
                [
                    "Go back to the ",
                    dcc.Link("Overview", href="/", className="alert-link"),
                    ", or open one of the pages:",
                ],
                className="mb-1",
            ),
            html.Ul(links, className="mb-0"),
        ],
        color="warning",
        className="mt-4",
        id="not-found",
    )


def layout(**_query):
    return not_found(_requested_path())
