"""Depth of each site's best unit (Figure S7): layers.depth, linearly spaced 0.0 (first) .. 1.0 (last layer).

Analysis `depth`: site_scores `depth` (of the site's rank-1 unit) and scores `median_depth` per region
with a bootstrap interval over sites (by animal/array where recorded). The spread of a site's depth across
models (Figure S7's error bars) is the standard deviation of its site_scores `depth` rows over models, read
by the dashboard.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.statistics.resample import site_interval


def unit_depths(layer_idx: np.ndarray, layer_depth: pd.Series) -> np.ndarray:
    """Normalised depth for each layer index (NaN for a missing index), from a layer_idx -> depth series."""
    return pd.Series(np.asarray(layer_idx, dtype=np.float64)).map(layer_depth).to_numpy(np.float64)


def run_depth(ctx: AnalysisContext) -> None:
    best = ctx.best_matches()
    depth_of = ctx.layers().set_index("layer_idx")["depth"].astype(float)
    best["depth"] = unit_depths(best["layer_idx"].to_numpy(np.float64), depth_of)
    ctx.write_site_scores(
        pd.DataFrame({"site_id": best["site_id"], "metric": "depth", "value": best["depth"]}).dropna(subset=["value"])
    )
    rows = [
        (
            region,
            "median_depth",
            *site_interval(
                g["depth"].to_numpy(), ctx.site_clusters(g.index.to_numpy()), ctx.n_resamples, ctx.rng(region)
            ),
        )
        for region, g in best.groupby("region", sort=True)
    ]
    ctx.write_scores(rows)


register(
    Analysis(
        "depth",
        "normalised depth (0 = first layer, 1 = last) of each site's best unit (Fig. S7)",
        run_depth,
        default_models="all",  # seconds per model: every demo model
        outputs=(("site_scores", "depth"), ("scores", "median_depth")),
    )
)
