"""Empty states: say what is missing and the command that makes it."""

from __future__ import annotations

import functools
from collections.abc import Callable

import dash_bootstrap_components as dbc
from dash import html

from backend import data
from backend.commands import demo_command
from backend.config import get_settings
from backend.errors import NotComputedError, NotFoundError


def guarded(layout: Callable) -> Callable:
    """Wrap a page's `layout(**query)`: no database, results not computed yet and bad URL parameters
    become their empty states (the layout just raises NotComputedError / NotFoundError)."""

    @functools.wraps(layout)
    def wrapper(**query):
        if not data.database_ready():
            return no_database(str(get_settings().db_path))
        try:
            return layout(**query)
        except NotComputedError as exc:
            return not_computed(exc.what, exc.command)
        except NotFoundError as exc:
            return friendly_error(str(exc))

    return wrapper


def no_database(db_path: str) -> dbc.Alert:
    return dbc.Alert(
        [
            html.H4("No results yet", className="alert-heading"),
            html.P(["Unitscope has not found a database at ", html.Code(db_path), "."]),
            html.P(
                [
                    "Build the embedded demo (synthetic HvM data and the default models) with ",
                    html.Code("./scripts/up.sh"),
                    " (sets everything up, builds and serves), or with ",
                    html.Code(demo_command()),
                    " in the project's environment. The pages fill in as each step is published.",
                ]
            ),
        ],
        color="info",
        className="mt-4",
        id="empty-no-database",
    )


def friendly_error(message: str) -> dbc.Alert:
    """Shown for a bad URL parameter or a missing item: never a traceback."""
    return dbc.Alert(
        [
            html.Strong("Cannot show this view. "),
            message,
            html.Span(" Pick another item from the controls, or "),
            html.A("start again", href="/", className="alert-link"),
            ".",
        ],
        color="warning",
        className="mt-3",
        id="friendly-error",
    )


def not_computed(what: str, command: str, after: str = "") -> dbc.Alert:
    """`after`: plain words after the command ("for a second model"), outside its code span."""
    return dbc.Alert(
        [html.Strong(f"{what} not computed yet. "), "Run ", html.Code(command), f" {after}." if after else "."],
        color="secondary",
        className="mt-2",
    )


def analysis_notes(notes: list[dict], *, with_model: bool = True):
    """The notes analyses left (backend.data.analysis_notes) as a short list under a figure, or None."""
    if not notes:
        return None
    return html.Ul(
        [html.Li([html.Strong(f"{n['model']}: ") if with_model else None, n["note"]]) for n in notes],
        className="small text-muted mb-0 mt-2",
    )
