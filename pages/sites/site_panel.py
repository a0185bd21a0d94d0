"""The Sites page's site statistics and receptive-field card (Figure S2: the site's mapped field and its
best unit's)."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from backend import data
from backend.commands import analyze_command
from components import empty
from components.figures.dataset import make_rf_map_figure
from components.figures.sites import make_unit_rf_figure
from components.theme import GRAPH_CONFIG
from pages.sites.common import ids


def rf_card() -> dbc.Card:
    return dbc.Card(
        [
            dbc.CardHeader("Receptive field (Figure S2)"),
            dbc.CardBody(
                dbc.Row(
                    [
                        dbc.Col(dcc.Loading(dcc.Graph(id=ids("rf"), config=GRAPH_CONFIG)), lg=6),
                        dbc.Col(
                            [
                                dcc.Loading(dcc.Graph(id=ids("unit-rf"), config=GRAPH_CONFIG)),
                                html.Div(id=ids("unit-rf-note")),
                            ],
                            lg=6,
                        ),
                    ]
                )
            ),
        ],
        className="mb-4",
    )


def rf_figures(dataset: str, model: str, site: str, site_row: pd.Series):
    """(the site's mapped field, its best unit's field beside it, the analyses' note or None)."""
    rf = data.site_rf(dataset, site)
    rf_fig = make_rf_map_figure(rf.iloc[0] if len(rf) else None, site_id=site)
    unit_rf = make_unit_rf_figure(
        data.unit_receptive_fields(dataset, model, site),
        site_row,
        site_id=site,
        model=model,
        command=analyze_command(dataset, model, "receptive_fields"),
    )
    note = empty.analysis_notes(data.analysis_notes(dataset, "receptive_fields", model), with_model=False)
    return rf_fig, unit_rf, note


def site_stats(site_row: pd.Series, scores: dict[str, float], top: pd.DataFrame, command: str | None = None) -> dbc.Row:
    """Reliability, best r and, where computed, the statistics of the site's match."""

    def stat(label, value, fmt="{:.3f}"):
        shown = "not computed" if value is None or pd.isna(value) else fmt.format(value)
        return dbc.Col([html.Div(label, className="stat-label"), html.Div(shown, className="stat-value")], xs=6)

    return dbc.Row(
        [
            stat("best r (in-sample)", float(top["r"].iloc[0]) if len(top) else None),
            stat("split-half reliability", site_row.get("reliability")),
            stat("held-out r", scores.get("heldout_r")),
            stat("match stability", scores.get("stability"), "{:.0%}"),
            stat("p-value (max null)", scores.get("p_value"), "{:.2g}"),
            stat("depth of best unit", float(top["depth"].iloc[0]) if len(top) else None, "{:.2f}"),
            dbc.Col(
                html.Small(
                    [
                        "Held-out r, stability and p come from the cross-validated analyses: run ",
                        html.Code(command),
                        ".",
                    ],
                    className="text-muted",
                ),
                xs=12,
            )
            if command and not {"heldout_r", "stability", "p_value"} <= set(scores)
            else None,
        ],
        className="g-2",
    )
