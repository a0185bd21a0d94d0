"""Controls page: rotated vs natural feature basis with the neural self-rotation (Figure 9), and the
pixels / random / untrained controls beside the models.

URL: /controls?dataset=...&region=IT
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from backend import data, params
from backend.commands import analyze_command, run_command
from components import empty
from components.exports import card_header, register_export
from components.figures.controls import make_controls_figure, make_rotation_figure
from components.ids import PageIds
from components.theme import GRAPH_CONFIG
from components.urlstate import query_store, to_query

dash.register_page(__name__, path="/controls", name="Controls", order=6, title="Unitscope · Controls")

ids = PageIds("controls")


def _intro() -> list:
    """What the controls are, in a sentence and a list."""
    return [
        html.P(
            "Does the match depend on the trained weights and on the network's own feature basis? "
            "Controls: pixels, normally distributed activations with a model's layer shapes (random-M), "
            "the architecture with random weights (untrained-M), and random rotations of the feature basis.",
            className="text-muted",
        ),
        html.Ul(
            [
                html.Li(
                    [html.Strong("pixels: "), "how much the raw image already explains (its pixels are its units)."]
                ),
                html.Li(
                    [
                        html.Strong("random-M: "),
                        "noise units that ignore the image, with M's layer shapes: the "
                        "in-sample score an ideal noise model of M's size reaches by chance. It sits below M's own "
                        "null median (the Overview's null column: M's units against permuted responses), because "
                        "real units are sparse and heavy-tailed and their chance maximum runs higher. Its held-out "
                        "scores are 0.",
                    ]
                ),
                html.Li(
                    [
                        html.Strong("untrained-M: "),
                        "M's architecture with random weights: how much comes from the "
                        "architecture (pooling, receptive fields) rather than from training.",
                    ]
                ),
            ],
            className="small text-muted",
        ),
    ]


def _selectors(dataset: str, region: str) -> dbc.Row:
    regions = data.regions(dataset)
    return dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("Dataset"),
                    dcc.Dropdown(
                        id=ids("dataset"),
                        value=dataset,
                        clearable=False,
                        options=[
                            {"label": t or d, "value": d}
                            for d, t in data.datasets()[["dataset", "title"]].itertuples(index=False)
                        ],
                    ),
                ],
                md=4,
            ),
            dbc.Col(
                [
                    dbc.Label("Region"),
                    dbc.RadioItems(
                        id=ids("region"),
                        value=region,
                        inline=True,
                        options=[{"label": r, "value": r} for r in regions],
                    ),
                ],
                md=3,
            ),
        ],
        className="g-3 mb-3",
    )


@empty.guarded
def layout(dataset=None, region=None, **_ignored):
    dataset = params.require_dataset(dataset)
    region = params.require_region(dataset, region)
    return html.Div(
        [
            html.H2("Controls"),
            *_intro(),
            _selectors(dataset, region),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Card(
                            [
                                card_header("Rotations of the feature basis (Figure 9)", "controls-rotations"),
                                dbc.CardBody(
                                    [
                                        dcc.Loading(dcc.Graph(id=ids("rotations"), config=GRAPH_CONFIG)),
                                        empty.analysis_notes(data.analysis_notes(dataset, "rotations")),
                                    ]
                                ),
                            ]
                        ),
                        lg=6,
                    ),
                    dbc.Col(
                        dbc.Card(
                            [
                                card_header("Models beside their controls", "controls-controls"),
                                dbc.CardBody(
                                    [
                                        dcc.Loading(dcc.Graph(id=ids("controls"), config=GRAPH_CONFIG)),
                                        missing_controls_note(dataset),
                                    ]
                                ),
                            ]
                        ),
                        lg=6,
                    ),
                ]
            ),
            dcc.Location(id=ids("nav"), refresh="callback-nav"),
            *query_store("controls"),
        ]
    )


def missing_controls_note(dataset: str):
    """Say which of the stored control models have no scores on the dataset yet, and the command that adds them."""
    scored = set(data.scores(dataset)["model"])
    stored = data.models()
    missing = [m for m in stored.loc[stored["kind"] == "control", "model"] if m not in scored]
    if not missing:
        return None
    return html.Small(
        [
            f"Not scored yet on {dataset}: {', '.join(missing)}. Run ",
            html.Code(run_command(dataset, missing[0])),
            " and ",
            html.Code(analyze_command(dataset, missing[0])),
            " for each.",
        ],
        className="text-muted",
    )


@dash.callback(Output(ids("nav"), "href"), Input(ids("dataset"), "value"), prevent_initial_call=True)
def switch_dataset(dataset):
    return "/controls" + to_query({"dataset": dataset})


# ---------------------------------------------------------------- cards: (figure, frame) of a valid view
def rotations_card(dataset: str, region: str):
    rot = data.rotations(dataset)
    return (make_rotation_figure(rot, region=region, command=_rotations_command(dataset)), rot[rot["region"] == region])


def _rotations_command(dataset: str) -> str:
    """The command for Figure 9's rotations, on the model the dashboard prefers (else the first matched)."""
    names = data.matched_models(dataset)["model"].tolist()
    model = data.PREFERRED_MODEL if data.PREFERRED_MODEL in names or not names else names[0]
    return analyze_command(dataset, model, "rotations")


def controls_card(dataset: str, region: str):
    scores = data.scores(dataset)
    frame = scores[(scores["region"] == region) & (scores["metric"] == "neural_correlation")]
    return make_controls_figure(scores, region=region), frame


@dash.callback(
    Output(ids("rotations"), "figure"),
    Output(ids("controls"), "figure"),
    Output({"type": "url-query", "page": "controls"}, "data"),
    Input(ids("region"), "value"),
    State(ids("dataset"), "value"),
)
def update_controls(region, dataset):
    return (
        rotations_card(dataset, region)[0],
        controls_card(dataset, region)[0],
        to_query({"dataset": dataset, "region": region}),
    )


def _view(dataset, region) -> tuple[str, str]:
    dataset = params.require_dataset(dataset)
    return dataset, params.require_region(dataset, region)


@register_export("controls-rotations", "Figure 9: natural vs rotated basis", ("dataset", "region"))
def export_rotations(dataset, region):
    return rotations_card(*_view(dataset, region))


@register_export("controls-controls", "Models beside their controls", ("dataset", "region"))
def export_controls(dataset, region):
    return controls_card(*_view(dataset, region))
