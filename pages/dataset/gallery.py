"""The Dataset page's stimulus gallery: category and object filters, pages of thumbnails, and the
stimulus modal (a click on a thumbnail enlarges it with its metadata)."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html

from backend import data
from components import empty
from components.stimuli import stimulus_src
from pages.dataset.common import ALL_VALUE, PAGE_SIZE, filter_stimuli, ids, options
from pages.dataset.state import page_count

META_FIELDS = [
    ("stimulus_id", "id"),
    ("category", "category"),
    ("object", "object"),
    ("variation", "variation"),
    ("ty", "position ty"),
    ("tz", "position tz"),
    ("s", "scale"),
    ("rxy", "rotation xy (°)"),
    ("rxz", "rotation xz (°)"),
    ("ryz", "rotation yz (°)"),
    ("background_id", "background"),
]


def filter_controls(state: dict) -> dbc.Row:
    """The dataset, category and object dropdowns."""
    stimuli = data.stimuli(state["dataset"])
    categories = sorted(stimuli["category"].dropna().unique())
    objects = sorted(filter_stimuli(stimuli, state["category"], None)["object"].dropna().unique())
    return dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("Dataset"),
                    dcc.Dropdown(
                        id=ids("dataset"),
                        options=[
                            {"label": t or d, "value": d}
                            for d, t in data.datasets()[["dataset", "title"]].itertuples(index=False)
                        ],
                        value=state["dataset"],
                        clearable=False,
                    ),
                ],
                md=4,
            ),
            dbc.Col(
                [
                    dbc.Label("Category"),
                    dcc.Dropdown(
                        id=ids("category"),
                        options=options(categories, "All categories"),
                        value=state["category"],
                        clearable=False,
                    ),
                ],
                md=4,
            ),
            dbc.Col(
                [
                    dbc.Label("Object"),
                    dcc.Dropdown(
                        id=ids("object"),
                        options=options(objects, "All objects"),
                        value=state["object"],
                        clearable=False,
                    ),
                ],
                md=4,
            ),
        ],
        className="g-3 mb-3",
    )


def gallery_card(state: dict) -> dbc.Card:
    return dbc.Card(
        [
            dbc.CardHeader(html.Span(id=ids("gallery-title"))),
            dbc.CardBody(
                [
                    dcc.Loading(html.Div(id=ids("gallery"), className="stimulus-grid")),
                    dbc.Pagination(
                        id=ids("page"),
                        max_value=1,
                        active_page=state["page"],
                        fully_expanded=False,
                        first_last=True,
                        previous_next=True,
                        className="mt-3 mb-0",
                    ),
                ]
            ),
        ],
        className="mb-4",
    )


def stimulus_modal() -> dbc.Modal:
    return dbc.Modal(
        [dbc.ModalHeader(dbc.ModalTitle(id=ids("modal-title"))), dbc.ModalBody(id=ids("modal-body"))],
        id=ids("modal"),
        size="lg",
        is_open=False,
    )


def _thumb(dataset: str, row) -> html.Div:
    return html.Div(
        html.Img(
            src=stimulus_src(dataset, row.stimulus_id),
            alt=f"{row.category} / {row.object}",
            title=f"{row.object} ({row.category})",
        ),
        id=ids.match("thumb", row.stimulus_id),
        n_clicks=0,
        className="stimulus-thumb",
        role="button",
    )


@dash.callback(
    Output(ids("object"), "options"),
    Output(ids("object"), "value"),
    Input(ids("category"), "value"),
    State(ids("dataset"), "value"),
    State(ids("object"), "value"),
    prevent_initial_call=True,
)
def update_objects(category, dataset, current):
    stimuli = data.stimuli(dataset)
    objects = sorted(filter_stimuli(stimuli, category, None)["object"].dropna().unique())
    return options(objects, "All objects"), current if current in objects else ALL_VALUE


@dash.callback(
    Output(ids("gallery"), "children"),
    Output(ids("gallery-title"), "children"),
    Output(ids("page"), "max_value"),
    Output(ids("page"), "active_page"),
    Input(ids("dataset"), "value"),
    Input(ids("category"), "value"),
    Input(ids("object"), "value"),
    Input(ids("page"), "active_page"),
)
def update_gallery(dataset, category, obj, page):
    reset = ctx.triggered_id in (ids("category"), ids("object"), ids("dataset"))
    return gallery_view(dataset, category, obj, 1 if reset else page)


def gallery_view(dataset: str, category: str, obj: str, page: int | None):
    """Thumbnails of one page of the filtered stimuli, the card title, the page count and the page."""
    stimuli = filter_stimuli(data.stimuli(dataset), category, obj)
    n_pages = page_count(len(stimuli))
    page = min(max(int(page or 1), 1), n_pages)
    shown = stimuli.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    label = "all categories" if category in (None, ALL_VALUE) else category
    if obj not in (None, ALL_VALUE):
        label += f" / {obj}"
    title = f"Stimuli: {len(stimuli)} of {label} (click one to enlarge)"
    return [_thumb(dataset, row) for row in shown.itertuples()], title, n_pages, page


@dash.callback(
    Output(ids("modal"), "is_open"),
    Output(ids("modal-title"), "children"),
    Output(ids("modal-body"), "children"),
    Input(ids.match("thumb", ALL), "n_clicks"),
    State(ids("dataset"), "value"),
    prevent_initial_call=True,
)
def open_stimulus(clicks, dataset):
    trigger = ctx.triggered_id
    if not trigger or not any(clicks or []):
        return dash.no_update, dash.no_update, dash.no_update
    stimulus_id = trigger["index"]
    stimuli = data.stimuli(dataset)
    row = stimuli[stimuli["stimulus_id"] == stimulus_id]
    if row.empty:
        return True, "Unknown stimulus", empty.friendly_error("this stimulus is not in the dataset")
    meta = row.iloc[0]
    table = dbc.Table(
        [
            html.Tbody(
                [html.Tr([html.Th(label), html.Td(_fmt(meta[col]))]) for col, label in META_FIELDS if col in meta.index]
            )
        ],
        size="sm",
        className="small stimulus-meta",
    )
    body = dbc.Row(
        [
            dbc.Col(html.Img(src=stimulus_src(dataset, stimulus_id), className="img-fluid stimulus-large"), md=6),
            dbc.Col(table, md=6),
        ]
    )
    return True, f"{meta['object']} ({meta['category']})", body


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)
