"""A null for the maximum: how high does the best of millions of units correlate with a response that has
no relation to the images?

Permuted copies of the sites' responses (each site with its own random permutation of the stimuli) are
extra rows of the statistics pass (streaming_pass.py), so the null costs no extra inference: each copy's
best r over all units is one draw of the null maximum. The draws of all sites are pooled (the maximum's
null depends on the units and the number of stimuli, hardly on which site was permuted), giving
N = permutations x sites draws: 256 with the default single permutation of the demo's 256 sites,
1,024 with --protocol paper (4 permutations).

Per site, p = (1 + #{null draws >= the site's in-sample best r}) / (1 + N): a permutation p-value whose
smallest possible value, the resolution, is 1 / (1 + N) (1/257 by default). q is the Benjamini-Hochberg
adjusted p over all sites of the (dataset, model): a site with q < 0.05 is a discovery at a 5% false
discovery rate.

Analysis registered here: `null` (scores `null_median` per region, the median of the region's sites'
null draws, with a bootstrap interval over draws, beside `neural_correlation`; `null_draws` (N) and
`significant_sites` (count with q < 0.05); site_scores `p_value`, `q_value`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from precompute.analyze import Analysis, AnalysisContext, register
from precompute.statistics.resample import median_interval

log = logging.getLogger(__name__)

FDR_LEVEL = 0.05


def max_null_p_values(observed: np.ndarray, null_draws: np.ndarray) -> np.ndarray:
    """p = (1 + #{draws >= observed}) / (1 + N) for each observed r; NaN where observed is NaN or N = 0."""
    observed = np.asarray(observed, dtype=np.float64)
    draws = np.sort(np.asarray(null_draws, dtype=np.float64).reshape(-1))
    draws = draws[np.isfinite(draws)]
    out = np.full(observed.shape, np.nan)
    if draws.size == 0:
        return out
    ok = np.isfinite(observed)
    at_least = draws.size - np.searchsorted(draws, observed[ok], side="left")
    out[ok] = (1.0 + at_least) / (1.0 + draws.size)
    return out


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q), NaN kept; the family is the finite p-values."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out[order] = np.clip(q, 0.0, 1.0)
    return out


def run_null(ctx: AnalysisContext) -> None:
    """scores null_median, null_draws, significant_sites; site_scores p_value, q_value."""
    from precompute.statistics.streaming_pass import ensure_pass

    result = ensure_pass(ctx, full=True)
    if result is None:
        return
    best = ctx.best_matches()  # sites.idx order, like the pass's columns
    draws = result.null_max  # (permutations, sites)
    p = max_null_p_values(best["r"].to_numpy(np.float64), draws)
    q = benjamini_hochberg(p)
    n_draws = int(np.isfinite(draws).sum())
    log.info("%s on %s: %d null draws, p resolution %.2g, %d of %d sites with q < %.2f", ctx.model, ctx.dataset,
             n_draws, 1.0 / (1 + n_draws), int(np.nansum(q < FDR_LEVEL)), len(q), FDR_LEVEL)
    rows = []
    for region, group in best.groupby("region", sort=True):
        cols = group["idx"].to_numpy(int)
        rows.append((region, "null_median", *median_interval(draws[:, cols].reshape(-1), ctx.n_resamples,
                                                              ctx.rng(str(region), "null"))))
        rows.append((region, "null_draws", float(n_draws), np.nan, np.nan))
        rows.append((region, "significant_sites", float(np.nansum(q[group.index.to_numpy()] < FDR_LEVEL)),
                     np.nan, np.nan))
    ctx.write_scores(pd.DataFrame(rows, columns=["region", "metric", "value", "ci_low", "ci_high"]))
    ctx.write_site_scores(pd.concat([
        pd.DataFrame({"site_id": best["site_id"], "metric": "p_value", "value": p}),
        pd.DataFrame({"site_id": best["site_id"], "metric": "q_value", "value": q}),
    ]).dropna(subset=["value"]))


register(Analysis(
    "null",
    "best-match r under permuted responses (same streaming pass): null median, per-site p and BH q",
    run_null,
    default_models="main",
    outputs=(("scores", "null_median"), ("scores", "null_draws"), ("scores", "significant_sites"),
             ("site_scores", "p_value"), ("site_scores", "q_value")),
))
