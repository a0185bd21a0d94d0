"""The paper's neural correlation: median over a region's sites of each site's best r (Arend et al. 2018).

Analyses registered here:
  neural_correlation  scores `neural_correlation` per region (whole model, rank-1 r) with a bootstrap
                      interval over sites, and `neural_correlation_stimuli`: the same median with a
                      bootstrap interval over stimuli (each site's selected unit held fixed, r recomputed
                      in float64 from the gathered activations)
  layer_scores        layer_scores `neural_correlation` per layer (median of each site's best-in-layer r)
                      with intervals; scores `best_layer` (the "V4-like"/"IT-like" layer) and
                      `best_layer_score` (its median, Figure S8, beside the all-layers score)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from precompute.analyze import Analysis, AnalysisContext, register
from precompute.statistics.correlation import complete_stimuli, pearson_rows, weighted_pearson_rows
from precompute.statistics.resample import (
    LEVEL,
    bootstrap_over_sites,
    median_interval,
    nanmedian_axis1,
    percentile_interval,
    stimulus_count_chunks,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- pure functions
def stimulus_bootstrap_median(responses: np.ndarray, activations: np.ndarray, n_resamples: int,
                              rng: np.random.Generator, level: float = LEVEL) -> tuple[float, float, float]:
    """Median over sites of r(site, its selected unit), with a bootstrap interval over stimuli.

    responses, activations: (sites, stimuli), row i of `activations` is site i's selected unit (held
    fixed: the selection is not redone). Each resample draws the stimuli with replacement, the same
    draw for every site, and recomputes every site's r; the interval is the percentile interval of
    the median over sites. Returns (median of the full-sample r, low, high); NaN when no site has r.
    """
    responses = np.asarray(responses, dtype=np.float64)
    activations = np.asarray(activations, dtype=np.float64)
    point = pearson_rows(responses, activations)
    keep = np.isfinite(point)
    if not keep.any():
        return float("nan"), float("nan"), float("nan")
    a, b = responses[keep], activations[keep]
    medians = [nanmedian_axis1(weighted_pearson_rows(a, b, w)) for w in
               stimulus_count_chunks(a.shape[1], n_resamples, rng)]
    lo, hi = percentile_interval(np.concatenate(medians), level)
    return float(np.median(point[keep])), float(lo), float(hi)


@dataclass(frozen=True)
class LayerStats:
    """Per-layer medians over sites with intervals, and the best layer with the spread of its choice."""

    median: np.ndarray  # (layers,)
    ci_low: np.ndarray
    ci_high: np.ndarray
    best_layer: int  # position in the layer axis of the highest median (ties: the earliest layer)
    best_layer_ci: tuple[float, float]  # percentile interval of the best layer's position over resamples
    best_score: float  # the best layer's median
    best_score_ci: tuple[float, float]  # interval of max-over-layers of the medians (selection included)


def layer_statistics(layer_r: np.ndarray, n_resamples: int, rng: np.random.Generator,
                     level: float = LEVEL) -> LayerStats:
    """Statistics of a (sites, layers) matrix of best-in-layer r (NaN where a site has none in a layer).

    All layers share each site resample, so the best layer is re-chosen in every resample and the
    interval of the best-layer score includes the optimism of picking the maximum.
    """
    layer_r = np.asarray(layer_r, dtype=np.float64)
    median = nanmedian_axis1(layer_r[None])[0]
    boot = bootstrap_over_sites(layer_r, nanmedian_axis1, n_resamples, rng)  # (resamples, layers)
    lo, hi = percentile_interval(boot, level)
    if np.all(np.isnan(median)):
        nan2 = (float("nan"), float("nan"))
        return LayerStats(median, lo, hi, -1, nan2, float("nan"), nan2)
    best = int(np.nanargmax(median))
    filled = np.where(np.isnan(boot), -np.inf, boot)
    best_boot = np.argmax(filled, axis=1).astype(np.float64)
    max_boot = np.max(filled, axis=1)
    blo, bhi = percentile_interval(best_boot, level)
    slo, shi = percentile_interval(np.where(np.isfinite(max_boot), max_boot, np.nan), level)
    return LayerStats(median, lo, hi, best, (float(blo), float(bhi)), float(median[best]), (float(slo), float(shi)))


def layer_matrix(layer_best: pd.DataFrame, site_ids: list[str], layer_idx: list[int]) -> np.ndarray:
    """(sites, layers) of best-in-layer r from rows (site_id, layer_idx, r); NaN where missing."""
    out = np.full((len(site_ids), len(layer_idx)), np.nan)
    srow = {s: i for i, s in enumerate(site_ids)}
    lcol = {int(li): j for j, li in enumerate(layer_idx)}
    rows = layer_best["site_id"].map(srow)
    cols = layer_best["layer_idx"].map(lcol)
    ok = rows.notna() & cols.notna()
    out[rows[ok].to_numpy(int), cols[ok].to_numpy(int)] = layer_best.loc[ok, "r"].to_numpy(np.float64)
    return out


# ---------------------------------------------------------------------------------------------- analyses
def run_neural_correlation(ctx: AnalysisContext) -> None:
    """scores: neural_correlation (interval over sites) and neural_correlation_stimuli (over stimuli)."""
    best = ctx.best_matches()
    responses = ctx.responses()
    rows = []
    for region, group in best.groupby("region", sort=True):
        med, lo, hi = median_interval(group["r"].to_numpy(np.float64), ctx.n_resamples, ctx.rng(region, "sites"))
        rows.append((region, "neural_correlation", med, lo, hi))
        matched = group[group["r"].notna()]
        units = list(matched[["layer_idx", "channel", "y", "x"]].astype(int).itertuples(index=False, name=None))
        stored = ctx.activations(units)
        have = np.array([u in stored for u in units], dtype=bool)
        if not have.all():
            log.warning("%s %s: %d sites' best units are not in unit_activations; left out of the stimulus "
                        "bootstrap", ctx.model, region, int((~have).sum()))
        if have.any():
            resp = responses[matched["idx"].to_numpy(int)[have]]
            acts = ctx.activation_matrix([u for u, h in zip(units, have, strict=True) if h])
            cols = complete_stimuli(resp)
            smed, slo, shi = stimulus_bootstrap_median(resp[:, cols], acts[:, cols], ctx.n_resamples,
                                                       ctx.rng(region, "stimuli"))
            rows.append((region, "neural_correlation_stimuli", smed, slo, shi))
    ctx.write_scores(pd.DataFrame(rows, columns=["region", "metric", "value", "ci_low", "ci_high"]))


def run_layer_scores(ctx: AnalysisContext) -> None:
    """layer_scores neural_correlation per layer; scores best_layer and best_layer_score (Figure S8)."""
    sites = ctx.sites()
    layer_idx = ctx.layers()["layer_idx"].astype(int).tolist()
    layer_best = ctx.layer_matches(rank=1)
    layer_rows, score_rows = [], []
    for region, group in sites.groupby("region", sort=True):
        matrix = layer_matrix(layer_best, group["site_id"].tolist(), layer_idx)
        stats = layer_statistics(matrix, ctx.n_resamples, ctx.rng(region))
        for j, li in enumerate(layer_idx):
            if np.isfinite(stats.median[j]):
                layer_rows.append((region, li, "neural_correlation", stats.median[j], stats.ci_low[j],
                                   stats.ci_high[j]))
        if stats.best_layer >= 0:
            lo, hi = (layer_idx[round(v)] if np.isfinite(v) else np.nan for v in stats.best_layer_ci)
            score_rows.append((region, "best_layer", layer_idx[stats.best_layer], lo, hi))
            score_rows.append((region, "best_layer_score", stats.best_score, *stats.best_score_ci))
    ctx.write_layer_scores(pd.DataFrame(layer_rows, columns=["region", "layer_idx", "metric", "value", "ci_low",
                                                             "ci_high"]))
    ctx.write_scores(pd.DataFrame(score_rows, columns=["region", "metric", "value", "ci_low", "ci_high"]))


register(Analysis(
    "neural_correlation",
    "median over sites of the best unit's r, with 95% intervals over sites and over stimuli",
    run_neural_correlation,
    default_models="all",
    outputs=(("scores", "neural_correlation"), ("scores", "neural_correlation_stimuli")),
))
register(Analysis(
    "layer_scores",
    "neural correlation within each layer; the best (V4-like / IT-like) layer and its score (Fig. S8)",
    run_layer_scores,
    default_models="all",  # seconds per model: every demo model
    outputs=(("layer_scores", "neural_correlation"), ("scores", "best_layer"), ("scores", "best_layer_score")),
))
