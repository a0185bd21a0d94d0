"""Runner-up units (Figures 7, S10): per site, the r of its top-K units and how close they come to the best.

For every site, over its whole-model top-K (`matches`, scope 'model') and over its top-K within its
region's best layer (`layer_matches` of the "V4-like" / "IT-like" layer, scope 'layer'): the best r, the
gap to the second, the median r of the top-K and how many runner-ups (ranks 2..K) lie within 0.05 of the
best. The per-rank r themselves (the rows of Figure 7's image) are already in `matches` / `layer_matches`.
Cost: one scan of the site's match rows (milliseconds).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.statistics.scores import best_layers

log = logging.getLogger(__name__)

#: a runner-up "within" the best: r >= best r - WITHIN
WITHIN = 0.05


def runnerup_summary(ranked: pd.DataFrame) -> pd.DataFrame:
    """Per site: best_r, gap (rank 1 - rank 2), median_r over the top-K, n_within_0_05 (ranks >= 2 with
    r >= best - 0.05). `ranked` has rows (site_id, rank, r); a site with one unit has a NaN gap."""
    rows = []
    for site, group in ranked.sort_values(["site_id", "rank"]).groupby("site_id", sort=False):
        r = group["r"].to_numpy(np.float64)
        r = r[np.isfinite(r)]
        if r.size == 0:
            continue
        best = float(r[0])
        gap = float(r[0] - r[1]) if r.size > 1 else float("nan")
        rows.append((site, best, gap, float(np.median(r)), int((r[1:] >= best - WITHIN - 1e-12).sum())))
    return pd.DataFrame(rows, columns=["site_id", "best_r", "gap", "median_r", "n_within_0_05"])


def run_runnerups(ctx: AnalysisContext) -> None:
    """Write `runnerups` for one (dataset, model): scope 'model' and scope 'layer' (the region's best layer)."""
    sites = ctx.sites()
    whole = runnerup_summary(ctx.matches())
    whole.insert(1, "scope", "model")
    whole.insert(2, "layer_idx", pd.array([None] * len(whole), dtype="Int64"))
    parts = [whole]
    layer_all = ctx.layer_matches(rank=None)
    best = best_layers(layer_all[layer_all["rank"] == 1], sites)
    for region, (layer_idx, _) in best.items():
        ids = set(sites.loc[sites["region"] == region, "site_id"])
        rows = layer_all[(layer_all["layer_idx"] == layer_idx) & layer_all["site_id"].isin(ids)]
        part = runnerup_summary(rows)
        part.insert(1, "scope", "layer")
        part.insert(2, "layer_idx", pd.array([layer_idx] * len(part), dtype="Int64"))
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    n = ctx.replace_rows("runnerups", out)
    log.info(
        "runnerups %s x %s: %d rows (best layers %s)", ctx.dataset, ctx.model, n, {k: v[0] for k, v in best.items()}
    )


register(
    Analysis(
        "runnerups",
        "per site: r of the top-K units, gap to the best, runner-ups within 0.05 (Figs. 7, S10)",
        run_runnerups,
        default_models="primary",
    )
)
