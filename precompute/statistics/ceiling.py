"""Noise ceilings from the per-site split-half reliability stored at import (sites.reliability).

Two conventions, because they answer different questions, both applied to held-out r only (an in-sample
maximum is biased upwards by the selection; ceiled, it can exceed 1):
- Brain-Score's (brainscore-vision 2.4, `explained_variance` in benchmark_helpers/neural_common.py): a region's
  cross-validated neuron_to_neuron score, aggregated as Brain-Score does (median over sites per split, mean
  over splits), squared and divided by the region's consistency (the median reliability over its sites), so
  our numbers can be set beside Brain-Score's (`brainscore_ceiled`, written by crossval with the r it ceils;
  the sign of r is kept).
- Correction for attenuation (Spearman): a site's r / sqrt(reliability) estimates the r a noiseless
  recording would give (`heldout_ceiled`, written by heldout_split_half).

Sites below LOW_RELIABILITY_THRESHOLD are flagged in site_scores (`low_reliability` = 1) and counted in
scores (`low_reliability_sites`); they are never silently dropped from any median.

Analysis registered here: `noise_ceiling` (scores: consistency, low_reliability_sites; site_scores:
low_reliability).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.statistics.resample import LEVEL, percentile_interval, site_interval, weighted_median

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


def brainscore_aggregate(per_split: np.ndarray) -> float:
    """Brain-Score's aggregation of a cross-validated per-neuroid score: the median over sites within each
    split, then the mean over splits (per_split: (splits, sites); NaN sites left out of a split's median)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(np.asarray(per_split, dtype=np.float64), axis=1)
    return float(np.nanmean(medians)) if np.isfinite(medians).any() else float("nan")


def explained_variance_ceiled(raw: np.ndarray, ceiling: np.ndarray) -> np.ndarray:
    """Brain-Score's `explained_variance(score, ceiling)` (benchmark_helpers/neural_common.py): r^2 / ceiling,
    with the sign of r kept (equal to Brain-Score's value whenever r >= 0; a negative r stays negative instead
    of turning into positive explained variance, so a score without signal scatters around 0)."""
    raw = np.asarray(raw, dtype=np.float64)
    ceiling = np.asarray(ceiling, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ceiling > 0, np.sign(raw) * raw * raw / ceiling, np.nan)


def brainscore_ceiled_rows(
    per_split_point: np.ndarray,
    per_split_under,
    reliability: np.ndarray,
    regions: list[str],
    groups: list[np.ndarray],
    clusters: list,
    stimuli,
    n_resamples: int,
    rng: np.random.Generator,
    level: float = LEVEL,
) -> list[tuple]:
    """(region, 'brainscore_ceiled', value, low, high, scheme) per region: Brain-Score's ceiled neural score,
    explained_variance_ceiled(brainscore_aggregate(held-out r), consistency), the consistency being the median
    reliability over the same sites. The interval resamples stimuli (the r recomputed) and sites (the same draw
    for both the score and the consistency), each by its clusters.

    per_split_point (splits, sites); per_split_under(counts) -> (chunk, splits, sites) (intervals.per_set_r_under);
    groups: each region's sites with a held-out r and a reliability."""
    stim_rng, *site_rngs = rng.spawn(1 + len(groups))
    draws = [cl.counts(n_resamples, r) for cl, r in zip(clusters, site_rngs, strict=True)]
    boot = []
    for counts in stimuli.counts(n_resamples, stim_rng):
        r = per_split_under(counts)  # (chunk, splits, sites)
        cols = []
        for j, g in enumerate(groups):
            w = next(draws[j])
            raw = (
                np.nanmean(np.stack([weighted_median(r[:, t][:, g], w) for t in range(r.shape[1])], axis=1), axis=1)
                if len(g)
                else np.full(len(w), np.nan)
            )
            den = weighted_median(np.broadcast_to(reliability[g], w.shape), w)
            cols.append(explained_variance_ceiled(raw, den))
        boot.append(np.stack(cols, axis=1))
    lo, hi = percentile_interval(np.concatenate(boot), level)
    rows = []
    for j, (region, g) in enumerate(zip(regions, groups, strict=True)):
        value = np.nan
        if len(g):
            value = float(
                explained_variance_ceiled(brainscore_aggregate(per_split_point[:, g]), np.median(reliability[g]))
            )
        rows.append(
            (
                region,
                "brainscore_ceiled",
                value,
                float(lo[j]),
                float(hi[j]),
                f"{clusters[j].describe('sites')} x {stimuli.describe('stimuli')}; {n_resamples} resamples",
            )
        )
    return rows


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
    ctx.write_site_scores(
        pd.DataFrame({"site_id": sites["site_id"], "metric": "low_reliability", "value": flags}).dropna(
            subset=["value"]
        )
    )
    rows = []
    for region, group in sites.groupby("region", sort=True):
        index = group.index.to_numpy()
        g_rel = rel[index]
        keep = index[np.isfinite(g_rel)]
        rows.append(
            (
                region,
                "consistency",
                *site_interval(rel[keep], ctx.site_clusters(keep), ctx.n_resamples, ctx.rng(region, "rel")),
            )
        )
        n_low = float(np.nansum(low_reliability_flags(g_rel)))
        rows.append((region, "low_reliability_sites", n_low, np.nan, np.nan, None))
    ctx.write_scores(rows)


register(
    Analysis(
        "noise_ceiling",
        "consistency (median split-half reliability over sites, Brain-Score's ceiling) and low-reliability flags",
        run_noise_ceiling,
        default_models="all",  # seconds per model: every demo model
        outputs=(("scores", "consistency"), ("scores", "low_reliability_sites"), ("site_scores", "low_reliability")),
    )
)
