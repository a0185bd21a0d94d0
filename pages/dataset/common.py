"""What every card of the Dataset page shares: its component ids and the stimulus filter."""

from __future__ import annotations

import pandas as pd

from components.ids import PageIds

ids = PageIds("dataset")
PAGE = "dataset"
PAGE_SIZE = 48
ALL_VALUE = "__all__"


def filter_stimuli(stimuli: pd.DataFrame, category: str | None, obj: str | None) -> pd.DataFrame:
    out = stimuli
    if category and category != ALL_VALUE:
        out = out[out["category"] == category]
    if obj and obj != ALL_VALUE:
        out = out[out["object"] == obj]
    return out


def options(values, all_label: str) -> list[dict]:
    """Dropdown options: "all" first, then every value."""
    return [{"label": all_label, "value": ALL_VALUE}] + [{"label": v, "value": v} for v in values]
