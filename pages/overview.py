"""Overview: what this build holds (datasets, models, steps) and where to go next.

URL: /
"""

from __future__ import annotations

import json

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from backend import data
from backend.config import get_settings
from components import empty

dash.register_page(__name__, path="/", name="Overview", order=0, title="Unitscope")


def layout(**_ignored):
    settings = get_settings()
    if not data.database_ready():
        return empty.no_database(str(settings.db_path))
    info = data.build_info()
    datasets = data.datasets()
    steps = json.loads(info.get("steps_done", "[]"))
    cards = []
    for row in datasets.itertuples():
        cards.append(dbc.Col(dbc.Card([
            dbc.CardHeader([html.Strong(row.title or row.dataset), " ",
                            dbc.Badge("synthetic", color="warning") if row.synthetic else None]),
            dbc.CardBody([
                html.P(row.description, className="small text-muted"),
                html.P(f"{row.n_stimuli} stimuli · {row.n_sites} sites", className="mb-2"),
                dcc.Link("Browse the dataset →", href=f"/dataset?dataset={row.dataset}"),
            ]),
        ], className="h-100"), md=6, lg=4, className="mb-3"))
    return html.Div([
        html.H2("Which single unit behaves like this neuron?"),
        html.P("Unitscope matches every recorded site to the single units of deep networks whose responses "
               "across the stimuli correlate best with it (Arend et al. 2018), and shows the analyses around "
               "those matches.", className="lead"),
        html.H4("Datasets", className="mt-4"),
        dbc.Row(cards) if cards else dbc.Alert("No dataset yet: the build is still running.", color="info"),
        html.H4("This build", className="mt-4"),
        html.Ul([
            html.Li(["build id ", html.Code(info.get("build_id", "?"))]),
            html.Li(f"published {info.get('published_at', '?')}"),
            html.Li(f"schema version {info.get('schema_version', '?')}"),
            html.Li(f"{len(steps)} steps done: " + ", ".join(steps)),
        ], className="small", id="overview-build"),
    ])
