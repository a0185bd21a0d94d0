"""Intervals that respect how the data were sampled: sites AND stimuli resampled, each by its clusters.

A region's score is a median over its sites of a per-site r (a site's best unit, or the unit it chose on
training stimuli, scored on some stimuli). Two things would change it in another experiment: other sites
(recorded on other arrays of other animals) and other images (other views of other objects). The sites of
one array share tuning and the views of one object share features, so resampling either as independent
units understates the spread. Every median-of-r score therefore gets a **two-way hierarchical bootstrap**:
each resample draws the stimuli by object (objects with replacement, then views within each drawn object;
`resample.Clusters`), recomputes every site's r with its unit held fixed (weighted sums: one matrix product
per resample chunk, `correlation.PairMoments`), then draws the sites by animal/array (clusters, then sites
within) and takes the median over the drawn sites. The interval is the 2.5th and 97.5th percentiles; the
scheme is stored beside it (`ci_scheme`). `*_stimuli` metrics keep the sites fixed (stimuli only): how
much the score moves with other images alone.

Selection is held fixed in every resample (the unit a site chose is not chosen again): the interval is the
sampling noise of the score given the selection. Held-out scores are unbiased given that selection, so
their intervals contain the null value on data without signal (tests/unit/test_stats_no_signal.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from precompute.statistics.correlation import PairMoments
from precompute.statistics.resample import LEVEL, Clusters, percentile_interval, weighted_median

#: per_site(counts (chunk, stimuli)) -> (chunk, sites) values under each stimulus resample
PerSite = Callable[[np.ndarray], np.ndarray]


def fixed_unit_r(responses: np.ndarray, values: np.ndarray) -> PerSite:
    """Per-site r of row i of `values` (each site's fixed unit) with row i of `responses`, over the
    resampled stimuli (NaN entries left out pair by pair)."""
    moments = PairMoments(responses, values)
    return moments.pearson


def per_set_r_under(responses: np.ndarray, values: np.ndarray, train_masks: np.ndarray):
    """counts (chunk, stimuli) -> (chunk, sets, sites): the r, on each training set's held-out stimuli (its
    complement), of the unit each site chose on the set (values (sets, sites, stimuli))."""
    holdout = ~np.asarray(train_masks, dtype=bool)
    cols = [np.flatnonzero(h) for h in holdout]
    moments = [PairMoments(responses, values[t]).columns(cols[t]) for t in range(len(cols))]
    return lambda counts: np.stack([m.pearson(counts[:, cols[t]]) for t, m in enumerate(moments)], axis=1)


def heldout_r_under(responses: np.ndarray, values: np.ndarray, train_masks: np.ndarray) -> PerSite:
    """Per-site mean over training sets of the r, on each set's held-out stimuli (its complement), of the
    unit the site chose on the set (values (sets, sites, stimuli)); a set without an r is left out of a
    site's mean, as in crossval.heldout_r + the per-site mean."""
    per_set = per_set_r_under(responses, values, train_masks)

    def per_site(counts: np.ndarray) -> np.ndarray:
        r = per_set(counts)
        ok = np.isfinite(r)
        n_ok = ok.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_ok > 0, np.where(ok, r, 0.0).sum(axis=1) / np.maximum(n_ok, 1), np.nan)

    return per_site


def scaled(per_site: PerSite, scale: np.ndarray) -> PerSite:
    """per_site's values times a fixed per-site factor (e.g. 1 / sqrt(reliability))."""
    return lambda counts: per_site(counts) * scale[None, :]


def bootstrap_medians(
    per_site: PerSite,
    stimuli: Clusters,
    groups: list[np.ndarray],
    site_clusters: list[Clusters] | None,
    n_resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(n_resamples, groups) medians over each group's sites under joint resamples of stimuli and sites.

    groups: site index arrays (e.g. one per region); site_clusters: their clusters (one per group, in the
    groups' own order), or None to keep the sites fixed (stimuli only)."""
    stim_rng, *site_rngs = rng.spawn(1 + len(groups))
    site_draws = None
    if site_clusters is not None:
        site_draws = [cl.counts(n_resamples, r) for cl, r in zip(site_clusters, site_rngs, strict=True)]
    out = []
    for counts in stimuli.counts(n_resamples, stim_rng):
        values = per_site(counts)
        cols = []
        for j, g in enumerate(groups):
            v = values[:, g]
            w = np.ones_like(v) if site_draws is None else next(site_draws[j])
            cols.append(weighted_median(v, w) if len(g) else np.full(len(counts), np.nan))
        out.append(np.stack(cols, axis=1))
    return np.concatenate(out, axis=0) if out else np.zeros((0, len(groups)))


def score_rows(
    ctx,
    metric: str,
    per_site_values: np.ndarray,
    per_site: PerSite,
    rng: np.random.Generator,
    *,
    stimuli_metric: str | None = None,
    level: float = LEVEL,
) -> list[tuple]:
    """(region, metric, median, low, high, scheme) rows of a median-of-r score: the two-way interval under
    `metric`, and (with `stimuli_metric`) the same median with the stimuli-only interval.

    per_site_values: (sites,) the point estimates in sites() order (NaN: no value, left out of the median
    and of its resamples); per_site: the same under stimulus resamples."""
    sites = ctx.sites().reset_index(drop=True)
    regions = sorted(sites["region"].unique())
    finite = np.isfinite(np.asarray(per_site_values, dtype=np.float64))
    groups = [np.flatnonzero((sites["region"] == g).to_numpy() & finite) for g in regions]
    clusters = [ctx.site_clusters(g) for g in groups]
    stimuli = ctx.stimulus_clusters()
    n = ctx.n_resamples
    both_rng, stim_rng = rng.spawn(2)
    boot = bootstrap_medians(per_site, stimuli, groups, clusters, n, both_rng)
    lo, hi = percentile_interval(boot, level)
    rows = []
    for i, (region, g) in enumerate(zip(regions, groups, strict=True)):
        point = float(np.median(per_site_values[g])) if len(g) else np.nan
        scheme = f"{clusters[i].describe('sites')} x {stimuli.describe('stimuli')}; {n} resamples"
        rows.append((region, metric, point, float(lo[i]), float(hi[i]), scheme))
    if stimuli_metric:
        boot_s = bootstrap_medians(per_site, stimuli, groups, None, n, stim_rng)
        lo_s, hi_s = percentile_interval(boot_s, level)
        for i, (region, g) in enumerate(zip(regions, groups, strict=True)):
            point = float(np.median(per_site_values[g])) if len(g) else np.nan
            scheme = f"{stimuli.describe('stimuli')}, sites fixed; {n} resamples"
            rows.append((region, stimuli_metric, point, float(lo_s[i]), float(hi_s[i]), scheme))
    return rows
