"""Paired comparison of two models over the same sites and stimuli: does model A beat model B?

For every pair of models matched on the dataset and every region, over the sites both have a value for:
`difference` = median over sites of the per-site difference r_A - r_B (the median of paired differences:
pairing removes the between-site variance the two models share), with a 95% interval from the two-way
hierarchical bootstrap (stimuli by object x sites by animal/array, intervals.py: both models' r are
recomputed on the same resampled stimuli, the same resampled sites enter both), and `p_value` the two-sided
bootstrap p of "no difference": twice the smaller share of resampled medians on either side of zero (at
least 1 / resamples; below 0.05 exactly when the 95% interval excludes 0). `p_holm` adjusts p over every
pair of the region and metric (Holm's step-down: the family-wise error of 15 pairs of 6 models stays at 5%).

Metrics, in order of importance:
- `heldout_split_half` (primary): each site's unit chosen on folds 0-4 over all units, scored on folds 5-9.
  A model with more units gains nothing from them here unless they generalise.
- `neural_correlation` (secondary, the paper's): each site's in-sample best r. It favours models with more
  units (more chances at a high maximum), so a difference here alone is not evidence of a better model.

Sites are not treated as independent (they share arrays and tuning) and neither are stimuli (views of one
object): the Wilcoxon signed-rank test this replaces did both. Analysis `model_comparison`, run once per
dataset over all matched models (step `analyze:model_comparison:<dataset>`).
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd

from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.core.errors import UserError
from precompute.datasets.folds import SPLIT_HALF_TRAIN_FOLDS
from precompute.statistics import intervals
from precompute.statistics.crossval import masked_pearson_rows
from precompute.statistics.resample import LEVEL, percentile_interval

log = logging.getLogger(__name__)

METRICS = ("heldout_split_half", "neural_correlation")
TEST = "two-way cluster bootstrap of the median paired difference"


def bootstrap_p(boot: np.ndarray) -> float:
    """Two-sided p of 'the median difference is zero' from bootstrap medians: 2 x the smaller share on either
    side of 0 (ties count for both), at least 1 / len, at most 1; NaN without finite resamples."""
    b = np.asarray(boot, dtype=np.float64)
    b = b[np.isfinite(b)]
    if b.size == 0:
        return float("nan")
    side = min(float(np.mean(b <= 0)), float(np.mean(b >= 0)))
    return float(min(1.0, max(2.0 * side, 1.0 / b.size)))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN kept; the family is the finite p)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out[order] = np.clip(adjusted, 0.0, 1.0)
    return out


def paired_difference(
    per_site_a,
    per_site_b,
    point_a: np.ndarray,
    point_b: np.ndarray,
    stimuli,
    clusters,
    n_resamples: int,
    rng: np.random.Generator,
    level: float = LEVEL,
) -> tuple[float, float, float, float]:
    """(median over sites of a - b, interval low, high, bootstrap p) over the sites where both have a value.

    per_site_a/b: the models' per-site r under stimulus resamples (intervals.PerSite) for those sites;
    point_a/b their values on the full sample; clusters: resample.Clusters of those sites."""
    d = np.asarray(point_a, dtype=np.float64) - np.asarray(point_b, dtype=np.float64)
    if not np.isfinite(d).any():
        return float("nan"), float("nan"), float("nan"), float("nan")
    if np.all(d[np.isfinite(d)] == 0):
        return 0.0, 0.0, 0.0, 1.0
    group = np.arange(len(d))
    boot = intervals.bootstrap_medians(
        lambda c: per_site_a(c) - per_site_b(c), stimuli, [group], [clusters], n_resamples, rng
    )[:, 0]
    lo, hi = percentile_interval(boot, level)
    return float(np.nanmedian(d)), float(lo), float(hi), bootstrap_p(boot)


def _model_values(ctx: AnalysisContext, model: str, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-site point r, the units' activations (sites, stimuli), the stimuli each site is scored on)."""
    n_stim = len(ctx.stimulus_ids())
    if metric == "heldout_split_half":
        values = ctx.unit_values(ctx.split_units(SPLIT_HALF_TRAIN_FOLDS, model=model), model=model)
        scored = ctx.folds() >= SPLIT_HALF_TRAIN_FOLDS
    else:
        best = ctx.best_matches(model=model)
        units = [
            None if pd.isna(r.r) else (int(r.layer_idx), int(r.channel), int(r.y), int(r.x))
            for r in best.itertuples(index=False)
        ]
        values = ctx.unit_values(units, model=model)
        scored = np.ones(n_stim, dtype=bool)
    return masked_pearson_rows(ctx.responses(), values, scored), values, scored


def run_model_comparison(ctx: AnalysisContext) -> None:
    sites = ctx.sites().reset_index(drop=True)
    responses = ctx.responses()
    stimuli = ctx.stimulus_clusters()
    rows = []
    for metric in METRICS:
        per_model = {}
        for m in ctx.models:
            try:
                per_model[m] = _model_values(ctx, m, metric)
            except UserError as exc:  # matched before held-out selection was part of matching
                log.warning("model_comparison %s: %s is left out (%s)", metric, m, exc)
        for region, group in sites.groupby("region", sort=True):
            family = []
            for model_a, model_b in itertools.combinations([m for m in ctx.models if m in per_model], 2):
                point_a, values_a, scored = per_model[model_a]
                point_b, values_b, _ = per_model[model_b]
                index = group.index.to_numpy()
                index = index[np.isfinite(point_a[index]) & np.isfinite(point_b[index])]
                if not len(index):
                    continue
                under_a = intervals.heldout_r_under(responses[index], values_a[index][None], ~scored[None])
                under_b = intervals.heldout_r_under(responses[index], values_b[index][None], ~scored[None])
                clusters = ctx.site_clusters(index)
                diff, lo, hi, p = paired_difference(
                    under_a,
                    under_b,
                    point_a[index],
                    point_b[index],
                    stimuli,
                    clusters,
                    ctx.n_resamples,
                    ctx.rng(str(region), metric, model_a, model_b),
                )
                scheme = f"{clusters.describe('sites')} x {stimuli.describe('stimuli')}; {ctx.n_resamples} resamples"
                family.append([region, model_a, model_b, metric, diff, p, lo, hi, np.nan, TEST, scheme])
            adjusted = holm(np.array([f[5] for f in family], dtype=np.float64))
            for f, q in zip(family, adjusted, strict=True):
                f[8] = q
            rows += family
    if not rows:
        log.info("%s: fewer than two matched models, nothing to compare", ctx.dataset)
    ctx.write_model_comparisons(
        pd.DataFrame(
            rows,
            columns=[
                "region",
                "model_a",
                "model_b",
                "metric",
                "difference",
                "p_value",
                "ci_low",
                "ci_high",
                "p_holm",
                "test",
                "ci_scheme",
            ],
        )
    )


register(
    Analysis(
        "model_comparison",
        "paired comparison of every two matched models over the same sites and stimuli: held-out r (primary) and "
        "in-sample r; median difference, two-way cluster bootstrap interval and p, Holm-adjusted",
        run_model_comparison,
        default_models="all",
        cross_model=True,
        outputs=(("model_comparisons", "heldout_split_half"), ("model_comparisons", "neural_correlation")),
    )
)
