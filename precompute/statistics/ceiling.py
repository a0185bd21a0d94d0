"""Noise ceilings from the per-site split-half reliability stored at import (sites.reliability).

Two conventions, because they answer different questions:
- Brain-Score's: a region's score divided by the region's consistency (the median reliability over its
  sites), so our numbers can be set beside Brain-Score's (`brainscore_ceiled`).
- Correction for attenuation (Spearman): a site's r / sqrt(reliability) estimates the r a noiseless
  recording would give. It is only applied to held-out r (`heldout_ceiled`): the in-sample maximum is
  biased upwards by the selection and, corrected this way, can exceed 1.

Sites below LOW_RELIABILITY_THRESHOLD are flagged in site_scores (`low_reliability` = 1) and counted in
scores (`low_reliability_sites`); they are never silently dropped from any median.

Analysis registered here: `noise_ceiling` (scores: consistency, brainscore_ceiled, low_reliability_sites,
and heldout_ceiled once a held-out analysis has written per-site held-out r; site_scores:
low_reliability, heldout_ceiled).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from precompute.analyze import Analysis, AnalysisContext, register
from precompute.statistics.resample import LEVEL, bootstrap_over_sites, median_interval, percentile_interval

log = logging.getLogger(__name__)

#: Split-half (Spearman-Brown) reliability below which a site is flagged: its noise then makes up more
#: than half of its response variance, and a correction would more than multiply its r by 1.41.
LOW_RELIABILITY_THRESHOLD = 0.5
#: site_scores metric holding each site's held-out r (written by the cross-validated matching analysis,
#: issue 6 part 2); `noise_ceiling` corrects it for attenuation when present.
HELDOUT_SITE_METRIC = "heldout_split_half"


# ---------------------------------------------------------------------------------------------- pure functions
def attenuation_corrected(r: np.ndarray, reliability: np.ndarray) -> np.ndarray:
    """r / sqrt(reliability) (Spearman's correction for attenuation); NaN where reliability <= 0 or unknown.

    Apply it to held-out r only: an in-sample maximum corrected this way can exceed 1."""
    r = np.asarray(r, dtype=np.float64)
    rel = np.asarray(reliability, dtype=np.float64)
    ok = np.isfinite(rel) & (rel > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, r / np.sqrt(np.where(ok, rel, 1.0)), np.nan)


def low_reliability_flags(reliability: np.ndarray, threshold: float = LOW_RELIABILITY_THRESHOLD) -> np.ndarray:
    """1.0 where reliability < threshold (or not positive), 0.0 above; NaN where unknown (no trials)."""
    rel = np.asarray(reliability, dtype=np.float64)
    return np.where(np.isnan(rel), np.nan, (rel < threshold).astype(np.float64))


def ceiled_median(r: np.ndarray, reliability: np.ndarray, n_resamples: int, rng: np.random.Generator,
                  level: float = LEVEL) -> tuple[float, float, float]:
    """Brain-Score's ceiled score: median(r) / median(reliability) over the same sites.

    The interval resamples sites jointly for both medians (Brain-Score treats the ceiling as fixed;
    resampling it too gives the honester, slightly wider interval). Sites without r or reliability
    are left out of both medians."""
    r = np.asarray(r, dtype=np.float64)
    rel = np.asarray(reliability, dtype=np.float64)
    keep = np.isfinite(r) & np.isfinite(rel)
    if not keep.any() or np.median(rel[keep]) <= 0:
        return float("nan"), float("nan"), float("nan")
    pair = np.stack([r[keep], rel[keep]], axis=1)
    boot = bootstrap_over_sites(pair, lambda s: np.median(s[..., 0], axis=1) / np.median(s[..., 1], axis=1),
                                n_resamples, rng)
    lo, hi = percentile_interval(np.where(np.isfinite(boot), boot, np.nan), level)
    return float(np.median(r[keep]) / np.median(rel[keep])), float(lo), float(hi)


# ---------------------------------------------------------------------------------------------- analysis
def write_heldout_ceiled(ctx: AnalysisContext, heldout_r: pd.Series) -> None:
    """The hook for held-out r (site_id -> r): site_scores and scores `heldout_ceiled`.

    The cross-validated matching analysis may call this directly; `noise_ceiling` calls it with the
    site_scores rows of HELDOUT_SITE_METRIC when they exist."""
    sites = ctx.sites().set_index("site_id")
    common = sites.index.intersection(heldout_r.index)
    ceiled = pd.Series(attenuation_corrected(heldout_r.loc[common].to_numpy(),
                                             sites.loc[common, "reliability"].to_numpy(np.float64)), index=common)
    ctx.write_site_scores(pd.DataFrame({"site_id": common, "metric": "heldout_ceiled", "value": ceiled.to_numpy()})
                          .dropna(subset=["value"]))
    rows = []
    for region, ids in sites.loc[common].groupby("region").groups.items():
        rows.append((region, "heldout_ceiled",
                     *median_interval(ceiled.loc[ids].to_numpy(), ctx.n_resamples, ctx.rng(region, "heldout"))))
    ctx.write_scores(pd.DataFrame(rows, columns=["region", "metric", "value", "ci_low", "ci_high"]))


def run_noise_ceiling(ctx: AnalysisContext) -> None:
    """Consistency, Brain-Score-ceiled neural correlation, low-reliability flags, held-out ceiling hook."""
    best = ctx.best_matches().merge(ctx.sites()[["site_id", "reliability"]], on="site_id")
    rel = best["reliability"].to_numpy(np.float64)
    if np.isnan(rel).all():
        log.info("%s has no reliability (no trials): no noise ceiling", ctx.dataset)
        return
    flags = low_reliability_flags(rel)
    ctx.write_site_scores(pd.DataFrame({"site_id": best["site_id"], "metric": "low_reliability", "value": flags})
                          .dropna(subset=["value"]))
    rows = []
    for region, group in best.groupby("region", sort=True):
        g_rel = group["reliability"].to_numpy(np.float64)
        rows.append((region, "consistency", *median_interval(g_rel, ctx.n_resamples, ctx.rng(region, "rel"))))
        rows.append((region, "brainscore_ceiled", *ceiled_median(group["r"].to_numpy(np.float64), g_rel,
                                                                 ctx.n_resamples, ctx.rng(region, "ceiled"))))
        n_low = float(np.nansum(low_reliability_flags(g_rel)))
        rows.append((region, "low_reliability_sites", n_low, np.nan, np.nan))
    ctx.write_scores(pd.DataFrame(rows, columns=["region", "metric", "value", "ci_low", "ci_high"]))
    heldout = ctx.con.execute("SELECT site_id, value FROM site_scores WHERE dataset = ? AND model = ? AND metric = ?",
                              [ctx.dataset, ctx.model, HELDOUT_SITE_METRIC]).df()
    if not heldout.empty:
        write_heldout_ceiled(ctx, heldout.set_index("site_id")["value"])
    else:
        log.info("no held-out r (%s) for %s on %s yet: heldout_ceiled not computed", HELDOUT_SITE_METRIC,
                 ctx.model, ctx.dataset)


register(Analysis(
    "noise_ceiling",
    "consistency, Brain-Score-ceiled score, low-reliability flags; held-out r corrected for attenuation",
    run_noise_ceiling,
    default_models="all",  # seconds per model: every demo model
    outputs=(("scores", "consistency"), ("scores", "brainscore_ceiled"), ("scores", "low_reliability_sites"),
             ("scores", "heldout_ceiled"), ("site_scores", "low_reliability"), ("site_scores", "heldout_ceiled")),
))
