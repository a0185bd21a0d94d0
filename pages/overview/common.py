"""What every card of the Overview shares: ids, the size axes and the validated views."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from backend import data, params
from backend.errors import NotFoundError
from components.figures.overview import available_metrics
from components.ids import PageIds

ids = PageIds("overview")
PAGE = "overview"
SIZE_AXES = {"parameters": "parameters", "total_units": "units"}
#: The Overview's region control picks the layer-vs-all figure, which opens on IT (backend.params' rule)
PREFERRED_REGION = "IT"


def require_metric(dataset: str, scores: pd.DataFrame, metric) -> str:
    """A computed metric of the dataset's scores (default: the first, in METRICS order)."""
    metrics = available_metrics(scores)
    if not metrics:
        raise NotFoundError("no scores yet")
    return params.require_choice(
        "metric", metric, metrics, unknown=f" (or not computed on {dataset}); available: {', '.join(metrics)}"
    )


def scores_view(dataset, metric) -> tuple[str, pd.DataFrame, str]:
    """(dataset, its scores, the metric) from URL parameters, validated."""
    dataset = params.require_dataset(dataset)
    scores = data.scores(dataset)
    return dataset, scores, require_metric(dataset, scores, metric)


@dataclass(frozen=True)
class ResultsView:
    """The Overview's validated results state (every control's value)."""

    dataset: str
    metric: str
    size: str
    region: str
    model: str
    metrics: list[str]
    models: list[str]


def results_view(dataset: str, scores: pd.DataFrame, metric, region, model, size) -> ResultsView:
    """Check the results section's URL parameters (the dataset has scores) and fill in their defaults."""
    models = sorted(scores["model"].unique())
    preferred = data.PREFERRED_MODEL if data.PREFERRED_MODEL in models else models[0]
    return ResultsView(
        dataset=dataset,
        metric=require_metric(dataset, scores, metric),
        size=params.require_choice("size", size, list(SIZE_AXES), "parameters"),
        region=params.require_region(dataset, region, prefer=PREFERRED_REGION),
        model=params.require_choice("model", model, models, preferred, unknown=f": no scores on {dataset}"),
        metrics=available_metrics(scores),
        models=models,
    )
