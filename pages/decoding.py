"""Decoding page: category decoding from neural, matched, random and pixel populations (Figure 5) and
confusion matrices (Figures S5, S6).

URL: /decoding?dataset=...&model=...&region=IT&variant=in_sample&condition=matched-neural
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from backend import data, params
from backend.commands import analyze_command
from backend.params import Filters
from components import empty
from components.exports import card_header, export_menu, register_export
from components.figures.decoding import CONDITIONS, condition_label, make_confusion_figure, make_decoding_figure
from components.filters import filter_bar, register_navigation
from components.ids import PageIds
from components.theme import GRAPH_CONFIG
from components.urlstate import query_store, to_query

dash.register_page(__name__, path="/decoding", name="Decoding", order=7, title="Unitscope · Decoding")

ids = PageIds("decoding")
VARIANTS = {"in_sample": "units chosen on all stimuli", "heldout": "units chosen on the other half (held-out)"}
CONDITION_VALUES = [f"{a}-{b}" for a, b in CONDITIONS]


def require_variant(variant) -> str:
    return params.require_choice("variant", variant, list(VARIANTS), "in_sample")


def require_condition(condition) -> str:
    return params.require_choice("condition", condition, CONDITION_VALUES, "matched-neural", unknown="")


@empty.guarded
def layout(dataset=None, model=None, region=None, variant=None, condition=None, **_ignored):
    f = params.resolve_filters(dataset, model, region)
    variant, condition = require_variant(variant), require_condition(condition)
    return html.Div(
        [
            html.H2("Decoding the category"),
            html.P(
                "Can a classifier trained on the units matched to a region's sites read the category from the "
                "real neurons, and the reverse? Linear SVMs, 8 categories, chance = 1/8.",
                className="text-muted",
            ),
            filter_bar(ids, f),
            dbc.RadioItems(
                id=ids("variant"),
                value=variant,
                inline=True,
                className="mb-3",
                options=[{"label": v, "value": k} for k, v in VARIANTS.items()],
            ),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Card(
                            [
                                card_header("Accuracy per condition (Figure 5)", "decoding-accuracy"),
                                dbc.CardBody(dcc.Loading(dcc.Graph(id=ids("accuracy"), config=GRAPH_CONFIG))),
                            ]
                        ),
                        lg=7,
                    ),
                    dbc.Col(
                        dbc.Card(
                            [
                                dbc.CardHeader(
                                    [
                                        export_menu("decoding-confusion"),
                                        html.Span("Confusion matrix (Figures S5, S6)"),
                                        dcc.Dropdown(
                                            id=ids("condition"),
                                            value=condition,
                                            clearable=False,
                                            className="mt-2",
                                            options=[
                                                {"label": condition_label(a, b), "value": f"{a}-{b}"}
                                                for a, b in CONDITIONS
                                            ],
                                        ),
                                    ]
                                ),
                                dbc.CardBody(dcc.Loading(dcc.Graph(id=ids("confusion"), config=GRAPH_CONFIG))),
                            ]
                        ),
                        lg=5,
                    ),
                ]
            ),
            *query_store("decoding"),
        ]
    )


register_navigation(ids, "/decoding", keep=("variant", "condition"))


# ---------------------------------------------------------------- cards: (figure, frame) of a valid view
def accuracy_card(f: Filters, variant: str):
    runs = data.decoding(f.dataset, f.model)
    fig = make_decoding_figure(
        runs, region=f.region, variant=variant, command=analyze_command(f.dataset, f.model, "decoding")
    )
    return fig, runs[runs["region"] == f.region]


def confusion_card(f: Filters, variant: str, condition: str):
    train, test = condition.split("-", 1)
    conf = data.confusions(f.dataset, f.model, f.region)
    fig = make_confusion_figure(
        conf, train=train, test=test, variant=variant, command=analyze_command(f.dataset, f.model, "decoding")
    )
    return fig, conf[
        (conf["train_population"] == train) & (conf["test_population"] == test) & (conf["variant"] == variant)
    ]


@dash.callback(
    Output(ids("accuracy"), "figure"),
    Output(ids("confusion"), "figure"),
    Output({"type": "url-query", "page": "decoding"}, "data"),
    Input(ids("variant"), "value"),
    Input(ids("condition"), "value"),
    State(ids("f-dataset"), "value"),
    State(ids("f-model"), "value"),
    State(ids("f-region"), "value"),
)
def update_decoding(variant, condition, dataset, model, region):
    f = Filters(dataset, model, region)
    return (
        accuracy_card(f, variant)[0],
        confusion_card(f, variant, condition)[0],
        to_query({"dataset": dataset, "model": model, "region": region, "variant": variant, "condition": condition}),
    )


@register_export(
    "decoding-accuracy", "Figure 5: decoding accuracy per condition", ("dataset", "model", "region", "variant")
)
def export_accuracy(dataset, model, region, variant):
    return accuracy_card(params.resolve_filters(dataset, model, region), require_variant(variant))


@register_export(
    "decoding-confusion", "Figures S5, S6: a confusion matrix", ("dataset", "model", "region", "variant", "condition")
)
def export_confusion(dataset, model, region, variant, condition):
    return confusion_card(
        params.resolve_filters(dataset, model, region), require_variant(variant), require_condition(condition)
    )
