"""Per-site split-half reliability, computed once at import (DESIGN.md, Contracts).

reliability = median over `n_splits` random half-splits of the repetitions of the Spearman-Brown
corrected correlation (2r / (1 + r)) between the two halves' trial-averaged responses over stimuli.
"""

from __future__ import annotations

import numpy as np


def split_half_reliability(trials: np.ndarray, n_splits: int = 10, seed: int = 0) -> np.ndarray:
    """Reliability of every site from trials shaped (n_sites, n_stimuli, n_repetitions).

    Missing repetitions are NaN (stimuli may have different repetition counts). Each split permutes
    the repetition slots with one seeded permutation shared by all sites and stimuli and splits them
    in two halves; stimuli whose half has no valid trial are left out of that split's correlation.
    Returns float64 (n_sites,); NaN for a site whose halves never vary.
    """
    trials = np.asarray(trials, dtype=np.float64)
    if trials.ndim != 3:
        raise ValueError(f"trials must be (sites, stimuli, repetitions), got shape {trials.shape}")
    n_sites, _, n_reps = trials.shape
    if n_reps < 2:
        raise ValueError("split-half reliability needs at least 2 repetitions per stimulus")
    rng = np.random.default_rng(seed)
    out = np.empty((n_splits, n_sites))
    for k in range(n_splits):
        perm = rng.permutation(n_reps)
        a = _nanmean(trials[:, :, perm[: n_reps // 2]])
        b = _nanmean(trials[:, :, perm[n_reps // 2 :]])
        ok = ~(np.isnan(a) | np.isnan(b)).any(axis=0)
        r = _rowwise_pearson(a[:, ok], b[:, ok])
        out[k] = 2 * r / (1 + r)
    with np.errstate(all="ignore"):
        return np.nanmedian(out, axis=0) if np.isnan(out).any() else np.median(out, axis=0)


def _nanmean(x: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(x)
    count = valid.sum(axis=2)
    total = np.where(valid, x, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape[1] < 2:  # no stimulus had trials in both halves: undefined, not an error
        return np.full(a.shape[0], np.nan)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=1) / denom, np.nan)
