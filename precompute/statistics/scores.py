"""The paper's neural correlation: median over a region's sites of each site's best r (Arend et al. 2018).

Analyses registered here:
  neural_correlation  scores `neural_correlation` per region (whole model, rank-1 r) with a two-way
                      interval (sites by animal/array x stimuli by object, intervals.py), and
                      `neural_correlation_stimuli`: the same median with the sites held fixed (each site's
                      selected unit held fixed, r recomputed in float64 from the gathered activations)
  layer_scores        layer_scores `neural_correlation` per layer (median of each site's best-in-layer r)
                      with intervals; scores `best_layer` (the "V4-like"/"IT-like" layer) and
                      `best_layer_score` (its median, Figure S8, beside the all-layers score)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.statistics import intervals
from precompute.statistics.resample import (
    LEVEL,
    Clusters,
    nanmedian_axis1,
    percentile_interval,
    weighted_median,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- pure functions
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


def layer_statistics(
    layer_r: np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
    level: float = LEVEL,
    clusters: Clusters | None = None,
) -> LayerStats:
    """Statistics of a (sites, layers) matrix of best-in-layer r (NaN where a site has none in a layer).

    All layers share each site resample (hierarchical when `clusters` are given), so the best layer is
    re-chosen in every resample and the interval of the best-layer score includes the optimism of picking
    the maximum.
    """
    layer_r = np.asarray(layer_r, dtype=np.float64)
    median = nanmedian_axis1(layer_r[None])[0]
    clusters = clusters if clusters is not None else Clusters.iid(len(layer_r))
    boot = (
        np.concatenate(
            [
                np.stack(
                    [weighted_median(np.broadcast_to(layer_r[:, j], w.shape), w) for j in range(layer_r.shape[1])],
                    axis=1,
                )
                for w in clusters.counts(n_resamples, rng)
            ]
        )
        if len(layer_r)
        else np.full((n_resamples, layer_r.shape[1]), np.nan)
    )
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
def best_layers(layer_best: pd.DataFrame, sites: pd.DataFrame) -> dict[str, tuple[int, float]]:
    """The "V4-like" / "IT-like" layer of each region: the layer with the highest median over the region's
    sites of the best-in-layer r (ties: the earliest layer), as the paper defines it. The one definition:
    `layer_scores` (its bootstrap resamples the same rule), the statistics pass, runner-ups and rotations.

    layer_best: rows (site_id, layer_idx, r) of rank-1 layer_matches; sites: (site_id, region).
    Returns region -> (layer_idx, median r)."""
    merged = layer_best.merge(sites[["site_id", "region"]], on="site_id")
    merged = merged[np.isfinite(merged["r"].astype(float))]
    out: dict[str, tuple[int, float]] = {}
    for region, group in merged.groupby("region", sort=True):
        med = group.groupby("layer_idx")["r"].median().sort_index()
        best = int(med.index[int(np.argmax(med.to_numpy()))])
        out[str(region)] = (best, float(med.loc[best]))
    return out


def run_neural_correlation(ctx: AnalysisContext) -> None:
    """scores: neural_correlation (interval: sites and stimuli resampled, each by its clusters) and
    neural_correlation_stimuli (stimuli only); each site's best unit is held fixed (intervals.py)."""
    best = ctx.best_matches()
    units = [
        None if pd.isna(r.r) else (int(r.layer_idx), int(r.channel), int(r.y), int(r.x))
        for r in best.itertuples(index=False)
    ]
    values = ctx.unit_values(units)
    missing = sum(1 for u, v in zip(units, values, strict=True) if u is not None and np.isnan(v).all())
    if missing:
        log.warning(
            "%s: %d sites' best units are not in unit_activations; their r is held fixed in the stimulus resamples",
            ctx.model,
            missing,
        )
    per_site = best["r"].to_numpy(np.float64)
    under = intervals.fixed_unit_r(ctx.responses(), values)
    if missing:
        fixed = np.where(np.isnan(values).all(axis=1) & np.isfinite(per_site), per_site, np.nan)
        inner = under

        def under(counts, inner=inner, fixed=fixed):
            got = inner(counts)
            return np.where(np.isfinite(fixed)[None, :], fixed[None, :], got)

    rows = intervals.score_rows(
        ctx,
        "neural_correlation",
        per_site,
        under,
        ctx.rng("neural_correlation"),
        stimuli_metric="neural_correlation_stimuli",
    )
    ctx.write_scores(rows)


def run_layer_scores(ctx: AnalysisContext) -> None:
    """layer_scores neural_correlation per layer; scores best_layer and best_layer_score (Figure S8)."""
    sites = ctx.sites()
    layer_idx = ctx.layers()["layer_idx"].astype(int).tolist()
    layer_best = ctx.layer_matches(rank=1)
    layer_rows, score_rows = [], []
    sites = sites.reset_index(drop=True)
    for region, group in sites.groupby("region", sort=True):
        matrix = layer_matrix(layer_best, group["site_id"].tolist(), layer_idx)
        clusters = ctx.site_clusters(group.index.to_numpy())
        stats = layer_statistics(matrix, ctx.n_resamples, ctx.rng(region), clusters=clusters)
        scheme = f"{clusters.describe('sites')}; {ctx.n_resamples} resamples"
        for j, li in enumerate(layer_idx):
            if np.isfinite(stats.median[j]):
                layer_rows.append(
                    (region, li, "neural_correlation", stats.median[j], stats.ci_low[j], stats.ci_high[j], scheme)
                )
        if stats.best_layer >= 0:
            lo, hi = (layer_idx[round(v)] if np.isfinite(v) else np.nan for v in stats.best_layer_ci)
            score_rows.append((region, "best_layer", layer_idx[stats.best_layer], lo, hi, scheme))
            score_rows.append((region, "best_layer_score", stats.best_score, *stats.best_score_ci, scheme))
    ctx.write_layer_scores(
        pd.DataFrame(layer_rows, columns=["region", "layer_idx", "metric", "value", "ci_low", "ci_high", "ci_scheme"])
    )
    ctx.write_scores(score_rows)


register(
    Analysis(
        "neural_correlation",
        "median over sites of the best unit's r, with 95% intervals over sites and over stimuli",
        run_neural_correlation,
        default_models="all",
        outputs=(("scores", "neural_correlation"), ("scores", "neural_correlation_stimuli")),
    )
)
register(
    Analysis(
        "layer_scores",
        "neural correlation within each layer; the best (V4-like / IT-like) layer and its score (Fig. S8)",
        run_layer_scores,
        default_models="all",  # seconds per model: every demo model
        outputs=(("layer_scores", "neural_correlation"), ("scores", "best_layer"), ("scores", "best_layer_score")),
    )
)
