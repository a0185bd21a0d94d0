"""Overview (/): the model leaderboard and the across-model figures, plus what this build holds.

URL: /?dataset=...&metric=neural_correlation&size=parameters&region=IT&model=...

Modules, one per card:
    page    the page's registration (path, title, layout)
    layout  the introduction, the results section, the datasets and the build; the URL callbacks
    common  component ids, size axes, the validated views (scores_view, results_view)
    scores  the leaderboard and Figures 3, 4, S3, S8 (+ their exports)
    models  Figures S1 and S4 for one model, and the paired comparisons table (+ its export)
"""

from pages.overview.common import SIZE_AXES, ids, results_view, scores_view
from pages.overview.layout import layout, results_section, switch_dataset, update_url
from pages.overview.models import comparison_rows, export_comparisons, update_model
from pages.overview.scores import (
    export_accuracy,
    export_leaderboard,
    export_regions,
    update_layers,
    update_metric,
    update_metric_note,
    update_size,
)

__all__ = [
    "SIZE_AXES",
    "comparison_rows",
    "export_accuracy",
    "export_comparisons",
    "export_leaderboard",
    "export_regions",
    "ids",
    "layout",
    "results_section",
    "results_view",
    "scores_view",
    "switch_dataset",
    "update_layers",
    "update_metric",
    "update_metric_note",
    "update_model",
    "update_size",
    "update_url",
]
