"""Feature maps and positions (Figures 8, S11, S13): which parts of a layer the recordings validate.

`featuremap_counts`, for every layer and region: how many of the region's sites have their best unit
within the layer (top '1') in each feature map (axis 'channel'), each row ('y') and each column ('x'),
and the same over every site's top-K units within the layer (top 'k'). Only non-zero counts are
stored: an index without a row has count 0.

The reverse view (Figure S13: for every feature map, its best-matched site and r, and how many sites
exceed 0.3 / 0.4 / 0.5 / 0.6) is a group-by over `featuremap_matches`, which already holds every
site's best unit in every feature map; `featuremap_validation` computes it (the dashboard can run the
same aggregate in SQL), so nothing more is stored for it.
Cost: group-bys over layer_matches (all ranks; ~1.3 M rows for Lite0 with K = 100): about a second.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register

log = logging.getLogger(__name__)

THRESHOLDS = (0.3, 0.4, 0.5, 0.6)
AXES = (("channel", "channel"), ("y", "y"), ("x", "x"))


def featuremap_counts(layer_rows: pd.DataFrame, sites: pd.DataFrame) -> pd.DataFrame:
    """Counts per (region, layer_idx, top, axis, index) from within-layer matches.

    layer_rows: (site_id, layer_idx, rank, channel, y, x); rank-1 rows give top '1', all rows top 'k'.
    Returns columns region, layer_idx, top, axis, index, count (non-zero counts only)."""
    df = layer_rows.merge(sites[["site_id", "region"]], on="site_id")
    parts = []
    for top, sel in (("1", df[df["rank"] == 1]), ("k", df)):
        for axis, col in AXES:
            counts = sel.groupby(["region", "layer_idx", col]).size().reset_index(name="count")
            counts = counts.rename(columns={col: "index"})
            counts.insert(2, "top", top)
            counts.insert(3, "axis", axis)
            parts.append(counts)
    out = pd.concat(parts, ignore_index=True)
    out["layer_idx"] = out["layer_idx"].astype("int32")
    out["index"] = out["index"].astype("int32")
    out["count"] = out["count"].astype("int32")
    return out[["region", "layer_idx", "top", "axis", "index", "count"]]


def featuremap_validation(
    fm_rows: pd.DataFrame, sites: pd.DataFrame, thresholds: Sequence[float] = THRESHOLDS
) -> pd.DataFrame:
    """Figure S13's view: per (region, layer_idx, channel), the best-matched site and its r, and the number of
    the region's sites whose best unit in that feature map has r above each threshold (`n_above_0_3`, ...).

    fm_rows: featuremap_matches rows (site_id, layer_idx, channel, r)."""
    df = fm_rows.merge(sites[["site_id", "region"]], on="site_id")
    df = df[np.isfinite(df["r"].astype(float))]
    keys = ["region", "layer_idx", "channel"]
    best = (
        df.sort_values([*keys, "r", "site_id"], ascending=[True, True, True, False, True])
        .drop_duplicates(keys)[[*keys, "site_id", "r"]]
        .rename(columns={"site_id": "best_site_id", "r": "best_r"})
    )
    for t in thresholds:
        name = f"n_above_{str(t).replace('.', '_')}"
        counts = df[df["r"] > t].groupby(keys).size().rename(name).reset_index()
        best = best.merge(counts, on=keys, how="left")
        best[name] = best[name].fillna(0).astype(int)
    return best.reset_index(drop=True)


def run_featuremaps(ctx: AnalysisContext) -> None:
    """Write `featuremap_counts` for every layer and region of one (dataset, model)."""
    rows = featuremap_counts(ctx.layer_matches(rank=None), ctx.sites())
    n = ctx.replace_rows("featuremap_counts", rows)
    log.info("featuremaps %s x %s: %d non-zero counts", ctx.dataset, ctx.model, n)


register(
    Analysis(
        "featuremaps",
        "sites per feature map, x and y of every layer, best unit and top-K (Figs. 8, S11)",
        run_featuremaps,
        default_models="primary",
    )
)
