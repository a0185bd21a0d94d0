"""Export any figure as PNG, SVG or PDF (server-side, through kaleido) or its data as CSV or Parquet.

Every view's state lives in its URL, so an export is the page's card rebuilt from the same query:
`/export/<figure>.<format>?<the page's query>` (the route is in routes.py). Pages register a builder per
card (`@register_export("sites-scatter", "...")`); the builder validates its parameters exactly as the
page does and calls the same card function as the page's callback, returning (figure, DataFrame). The
export menu's links get the page's current query appended in the browser (assets/exports.js), so they
always export what is on screen.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go

IMAGE_FORMATS = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}
DATA_FORMATS = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
MAX_PARAM_LENGTH = 200


@dataclass(frozen=True)
class ExportSpec:
    name: str
    description: str
    params: tuple[str, ...]
    build: Callable[..., tuple[go.Figure | None, pd.DataFrame]]
    data_only: bool = False  # a table: CSV and Parquet of exactly its rows, no image


_REGISTRY: dict[str, ExportSpec] = {}
_KALEIDO_LOCK = threading.Lock()
_KALEIDO_STARTED = threading.Event()


def register_export(name: str, description: str, params: tuple[str, ...], *, data_only: bool = False) -> Callable:
    """Decorator: `build(**params) -> (figure, frame)` becomes exportable as `name`.

    `data_only=True` registers a table (an AG Grid): its builder returns (None, the rows the table shows)
    and only CSV and Parquet are offered.
    """

    def decorate(fn: Callable[..., tuple[go.Figure | None, pd.DataFrame]]):
        _REGISTRY[name] = ExportSpec(name, description, params, fn, data_only)
        return fn

    return decorate


def registered() -> dict[str, ExportSpec]:
    return dict(_REGISTRY)


def export_menu(name: str, label: str = "Export", *, data_only: bool = False) -> dbc.DropdownMenu:
    """A small menu of download links for one registered figure (or, `data_only`, one table)."""
    formats = DATA_FORMATS if data_only else (*IMAGE_FORMATS, *DATA_FORMATS)
    items = [
        dbc.DropdownMenuItem(
            f"{fmt.upper()}{' (data)' if fmt in DATA_FORMATS else ''}",
            href=f"/export/{name}.{fmt}",
            external_link=True,
            target="_blank",
            className="export-link",
        )
        for fmt in formats
    ]
    return dbc.DropdownMenu(
        items, label=label, size="sm", color="light", className="export-menu float-end", id=f"export-{name}"
    )


def card_header(title, export: str, *, data_only: bool = False) -> dbc.CardHeader:
    """A card header with the figure's (or table's) title and its Export menu."""
    return dbc.CardHeader([export_menu(export, data_only=data_only), title], className="clearfix")


def safe_filename(name: str, params: dict[str, str], fmt: str) -> str:
    parts = ["unitscope", name] + [f"{k}-{v}" for k, v in params.items() if v not in (None, "")]
    stem = "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", str(p)).strip("-") for p in parts)
    return f"{stem[:180]}.{fmt}"


def render(fig: go.Figure, fmt: str) -> bytes:
    """Figure -> image bytes through kaleido's long-lived Chromium (started once, serialised)."""
    import kaleido

    with _KALEIDO_LOCK:
        if not _KALEIDO_STARTED.is_set():
            kaleido.start_sync_server(silence_warnings=True)
            _KALEIDO_STARTED.set()
        return kaleido.calc_fig_sync(
            fig,
            opts={
                "format": fmt,
                "width": fig.layout.width or 1000,
                "height": fig.layout.height or 600,
                "scale": 2 if fmt == "png" else 1,
            },
        )


def frame_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()
