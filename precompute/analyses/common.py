"""Helpers shared by the analyses: seeds, notes on what an analysis left out, controls, opening a model.

Every helper takes the `AnalysisContext` (the analyses' only way to the database); an analysis writes its
own table with `ctx.replace_rows` / `ctx.append_rows` (precompute/analyses/context_tables.py).
"""

from __future__ import annotations

import logging
import zlib

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def derived_seed(*keys: object) -> int:
    """A 63-bit integer seed from names and numbers (stored beside results so a draw can be repeated)."""
    parts = [zlib.crc32(str(k).encode()) for k in keys]
    return int(np.random.SeedSequence(parts).generate_state(2, np.uint64)[0] >> np.uint64(1))


#: build_info key: JSON object "<analysis>:<dataset>:<model>" -> a sentence the dashboard shows where an analysis
#: stored no rows on purpose (a random control has no receptive field, ...); null once it ran normally
NOTES_KEY = "analysis_notes"


def record_note(ctx, text: str | None) -> None:
    """Say (in build_info[NOTES_KEY]) why this (analysis, dataset, model) stored nothing or less than usual;
    None clears an earlier note. Also logged."""
    if text:
        log.info("%s %s x %s: %s", ctx.analysis, ctx.dataset, ctx.model, text)
    ctx.record(NOTES_KEY, f"{ctx.analysis}:{ctx.dataset}:{ctx.model}", text)


def is_random_control(ctx) -> bool:
    """Whether the context's model is a `random-M` control (activations that do not depend on the image)."""
    return ctx.model_kind() == ("control", "random")


def is_pixels_control(ctx) -> bool:
    """Whether the context's model is a `pixels` control (its units are the image's pixels)."""
    return ctx.model_kind() == ("control", "pixels")


def open_model(ctx):
    """(ActivationSource, ImageFeed of the dataset's stimuli in idx order) of the context's model, for analyses
    that must run it.

    Tests replace this function to analyse an in-memory model."""
    feed = ctx.image_feed()
    return ctx.activation_source(), feed


def try_open_model(ctx, what: str):
    """open_model, or None (with a warning saying what is skipped) when the model cannot be run here
    (no ONNX file recorded, the file missing): the analyses that need no model still run."""
    try:
        return open_model(ctx)
    except (RuntimeError, FileNotFoundError) as exc:
        log.warning("%s cannot be run (%s): %s skipped", ctx.model, exc, what)
        return None


def units_of(df: pd.DataFrame) -> list[tuple[int, int, int, int]]:
    """(layer_idx, channel, y, x) tuples of a frame's rows."""
    return [tuple(int(v) for v in row) for row in df[["layer_idx", "channel", "y", "x"]].itertuples(index=False)]
