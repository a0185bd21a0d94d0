"""A null for the maximum: how high does the best of millions of units correlate with a response that has
no relation to the images?

Permuted copies of the sites' responses (each site with its own random permutation of the stimuli) are
extra rows of the statistics pass (streaming_pass.py), so the null costs no extra inference: each copy's
best r over all units is one draw of the null maximum. The draws are pooled **within each region** (the
maximum's null depends on the units, the number of stimuli and the response distribution, which differs
between V4 and IT), giving N = permutations x the region's sites: 88 (V4) and 168 (IT) with the default
single permutation of the demo's sites, 4 times that with --protocol paper.

Per site, p = (1 + #{its region's null draws >= the site's in-sample best r}) / (1 + N): a permutation
p-value whose smallest possible value, the resolution, is 1 / (1 + N) (1/89 for V4 by default). q is the
Benjamini-Hochberg adjusted p over all sites of the (dataset, model): a site with q < 0.05 is a discovery
at a 5% false discovery rate.

The null median is the chance level of THIS model's best r: what its units reach with responses that have
no relation to the images. It is above the `random-M` control's score (normal activations that ignore the
image): real units are sparse and heavy-tailed, so their maximum over permuted responses runs higher than
the maximum of Gaussian noise. The random control is a lower, ideal-noise baseline; the null median is the
model's own.

Analysis registered here: `null` (scores `null_median` per region, the median of the region's null draws,
with an interval resampling the sites by their clusters, beside `neural_correlation`; `null_draws` (N) and
`significant_sites` (count with q < 0.05); site_scores `p_value`, `q_value`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.statistics.resample import percentile_interval, weighted_median
from precompute.statistics.streaming_pass import ensure_pass

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
    """scores null_median, null_draws, significant_sites per region; site_scores p_value, q_value."""
    result = ensure_pass(ctx)
    if result is None:
        return
    best = ctx.best_matches()  # sites.idx order, like the pass's columns
    draws = result.null_max  # (permutations, sites)
    observed = best["r"].to_numpy(np.float64)
    p = np.full(len(best), np.nan)
    rows = []
    for region, group in best.groupby("region", sort=True):
        cols = group["idx"].to_numpy(int)
        region_draws = draws[:, cols]
        p[group.index.to_numpy()] = max_null_p_values(observed[group.index.to_numpy()], region_draws)
        n_draws = int(np.isfinite(region_draws).sum())
        value, lo, hi, scheme = _draws_interval(
            region_draws, ctx.site_clusters(group.index.to_numpy()), ctx.n_resamples, ctx.rng(str(region), "null")
        )
        rows.append((region, "null_median", value, lo, hi, scheme))
        rows.append((region, "null_draws", float(n_draws), np.nan, np.nan, None))
        log.info(
            "%s %s on %s: %d null draws, p resolution %.2g",
            ctx.model,
            region,
            ctx.dataset,
            n_draws,
            1.0 / (1 + n_draws),
        )
    q = benjamini_hochberg(p)
    for region, group in best.groupby("region", sort=True):
        rows.append(
            (region, "significant_sites", float(np.nansum(q[group.index.to_numpy()] < FDR_LEVEL)), np.nan, np.nan, None)
        )
    ctx.write_scores(rows)
    ctx.write_site_scores(
        pd.concat(
            [
                pd.DataFrame({"site_id": best["site_id"], "metric": "p_value", "value": p}),
                pd.DataFrame({"site_id": best["site_id"], "metric": "q_value", "value": q}),
            ]
        ).dropna(subset=["value"])
    )


def _draws_interval(
    draws: np.ndarray, clusters, n_resamples: int, rng: np.random.Generator
) -> tuple[float, float, float, str]:
    """Median of all draws (permutations x sites) with an interval resampling the sites (by their clusters),
    each drawn site bringing all of its permutations' draws."""
    flat = draws.T.reshape(-1)  # site-major: site s's draws are flat[s*P:(s+1)*P]
    n_perm = draws.shape[0]
    boot = np.concatenate(
        [
            weighted_median(np.broadcast_to(flat, (len(w), flat.size)), np.repeat(w, n_perm, axis=1))
            for w in clusters.counts(n_resamples, rng)
        ]
    )
    lo, hi = percentile_interval(boot)
    finite = flat[np.isfinite(flat)]
    value = float(np.median(finite)) if finite.size else float("nan")
    return (
        value,
        float(lo),
        float(hi),
        f"{clusters.describe('sites')} (all of a site's draws together); {n_resamples} resamples",
    )


register(
    Analysis(
        "null",
        "best-match r under permuted responses (same streaming pass): null median, per-site p and BH q",
        run_null,
        default_models="main",
        outputs=(
            ("scores", "null_median"),
            ("scores", "null_draws"),
            ("scores", "significant_sites"),
            ("site_scores", "p_value"),
            ("site_scores", "q_value"),
        ),
    )
)
