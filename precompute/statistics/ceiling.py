"""Noise ceilings from the per-site split-half reliability stored at import (sites.reliability).

Two conventions, because they answer different questions, both applied to held-out r only (an in-sample
maximum is biased upwards by the selection; ceiled, it can exceed 1):
- Brain-Score's: a region's cross-validated score divided by the region's consistency (the median
  reliability over its sites), so our numbers can be set beside Brain-Score's (`brainscore_ceiled`, written
  by crossval with the neuron_to_neuron r it ceils).
- Correction for attenuation (Spearman): a site's r / sqrt(reliability) estimates the r a noiseless
  recording would give (`heldout_ceiled`, written by heldout_split_half).

Sites below LOW_RELIABILITY_THRESHOLD are flagged in site_scores (`low_reliability` = 1) and counted in
scores (`low_reliability_sites`); they are never silently dropped from any median.

Analysis registered here: `noise_ceiling` (scores: consistency, low_reliability_sites; site_scores:
low_reliability).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from precompute.analyze import Analysis, AnalysisContext, register
from precompute.statistics.resample import site_interval

log = logging.getLogger(__name__)

#: Split-half (Spearman-Brown) reliability below which a site is flagged: its noise then makes up more
#: than half of its response variance, and a correction would more than multiply its r by 1.41.
LOW_RELIABILITY_THRESHOLD = 0.5


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


# ---------------------------------------------------------------------------------------------- analysis
def run_noise_ceiling(ctx: AnalysisContext) -> None:
    """Consistency (the Brain-Score ceiling) and low-reliability flags; the ceiled scores are written with the
    held-out r they ceil (crossval: brainscore_ceiled, heldout_split_half: heldout_ceiled)."""
    sites = ctx.sites().reset_index(drop=True)
    rel = sites["reliability"].to_numpy(np.float64)
    if np.isnan(rel).all():
        log.info("%s has no reliability (no trials): no noise ceiling", ctx.dataset)
        return
    flags = low_reliability_flags(rel)
    ctx.write_site_scores(pd.DataFrame({"site_id": sites["site_id"], "metric": "low_reliability", "value": flags})
                          .dropna(subset=["value"]))
    rows = []
    for region, group in sites.groupby("region", sort=True):
        index = group.index.to_numpy()
        g_rel = rel[index]
        keep = index[np.isfinite(g_rel)]
        rows.append((region, "consistency", *site_interval(rel[keep], ctx.site_clusters(keep), ctx.n_resamples,
                                                            ctx.rng(region, "rel"))))
        n_low = float(np.nansum(low_reliability_flags(g_rel)))
        rows.append((region, "low_reliability_sites", n_low, np.nan, np.nan, None))
    ctx.write_scores(pd.DataFrame(rows, columns=["region", "metric", "value", "ci_low", "ci_high", "ci_scheme"]))


register(Analysis(
    "noise_ceiling",
    "consistency (median split-half reliability over sites, Brain-Score's ceiling) and low-reliability flags",
    run_noise_ceiling,
    default_models="all",  # seconds per model: every demo model
    outputs=(("scores", "consistency"), ("scores", "low_reliability_sites"), ("site_scores", "low_reliability")),
))
