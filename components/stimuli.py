"""Stimulus thumbnails (served by the /stimulus route) for any page."""

from __future__ import annotations

from urllib.parse import quote

from dash import html


def stimulus_src(dataset: str, stimulus_id: str) -> str:
    return f"/stimulus/{quote(dataset, safe='')}/{quote(stimulus_id, safe='')}.png"


def thumbnail_strip(dataset: str, rows, *, caption) -> html.Div:
    """A row of small images; `rows` have stimulus_id and object; `caption(row)` is the text under each."""
    return html.Div(
        [
            html.Figure(
                [
                    html.Img(src=stimulus_src(dataset, row.stimulus_id), alt=str(row.object), title=str(row.object)),
                    html.Figcaption(caption(row), className="small text-muted"),
                ],
                className="stimulus-strip-item",
            )
            for row in rows
        ],
        className="stimulus-strip",
    )
