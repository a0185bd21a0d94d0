"""Helpers shared by the figure modules."""

from __future__ import annotations

import pandas as pd


def require_columns(df: pd.DataFrame, columns: list[str] | tuple[str, ...], figure: str) -> None:
    """Raise a precise error when a figure is handed a frame without the columns it draws."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{figure}: missing column(s) {missing}; got {list(df.columns)}")
