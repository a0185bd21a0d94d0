"""The app shell: navigation bar, build status, page container."""

from __future__ import annotations

import logging

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from backend import data

STATUS_POLL_MS = 5000
log = logging.getLogger(__name__)


def callback_error(err: Exception) -> None:
    """A callback that fails leaves its outputs as they are (never a 500 with a traceback).

    The browser only sends values the controls offer; hand-made requests with other values end here.
    The error is logged with its traceback, so a real bug is still visible in the server's log.
    """
    log.warning("callback failed: %s: %s", type(err).__name__, err, exc_info=err)


def create_shell(page_registry) -> html.Div:
    links = [
        dbc.NavItem(dbc.NavLink(page["name"], href=page["relative_path"], active="exact"))
        for page in page_registry.values()
        if not page.get("hidden")
    ]
    navbar = dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand(
                    [
                        html.Span("Unitscope", className="fw-bold"),
                        html.Small(" single units vs. neurons", className="text-white-50 ms-1"),
                    ],
                    href="/",
                ),
                dbc.Nav(links, navbar=True, className="me-auto"),
                html.Span(id="build-status", className="navbar-text small"),
            ],
            fluid=True,
        ),
        color="dark",
        dark=True,
        className="mb-3",
    )
    return html.Div(
        [
            navbar,
            dcc.Interval(id="build-poll", interval=STATUS_POLL_MS),
            dcc.Location(id="build-reload", refresh=True),
            dcc.Store(id="build-seen"),
            dbc.Container(dash.page_container, fluid=True, className="pb-5"),
        ]
    )


@dash.callback(
    Output("build-status", "children"),
    Output("build-seen", "data"),
    Output("build-reload", "href"),
    Input("build-poll", "n_intervals"),
    State("build-seen", "data"),
    State("build-reload", "href"),
)
def update_build_status(_n, seen, href):
    """Show the build id; reload by itself on the first publish, offer a reload link on later ones."""
    current = data.build_id()
    if current == "missing":
        return dbc.Badge("no database yet: building…", color="warning"), "missing", dash.no_update
    if seen == "missing":  # the first build just appeared: show it without asking
        return dash.no_update, current, href
    seen = seen or current
    if current != seen:
        link = html.A(dbc.Badge("new results published: reload", color="success"), href=href or "/", id="reload-link")
        return link, seen, dash.no_update
    return dbc.Badge(f"build {current[:8]}", color="secondary", title=f"build id {current}"), seen, dash.no_update
