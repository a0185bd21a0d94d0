"""Exact float64 Pearson r: row-wise pairs, all pairs, and every pair under stimulus-bootstrap weights.

The matching engine's r are float32 and kept to 1e-4; the statistics recompute r in float64 from the
trial-averaged responses and the gathered activations wherever they need a new r (one-to-one
assignment, stimulus bootstrap), so they never depend on the engine's rounding.
"""

from __future__ import annotations

import numpy as np


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """r between row i of `a` and row i of `b` (both (n, stimuli)); NaN where either row is constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=-1) / np.where(denom > 0, denom, 1.0), np.nan)


def pearson_all(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """r of every row of `a` (n_a, stimuli) with every row of `b` (n_b, stimuli): (n_a, n_b).

    NaN where a row is constant (a unit with zero variance is never matched, DESIGN.md).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    na = np.sqrt((a * a).sum(axis=1))
    nb = np.sqrt((b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a @ b.T) / np.outer(na, nb)
    r[na == 0, :] = np.nan
    r[:, nb == 0] = np.nan
    return r


def weighted_pearson_rows(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """r of row pairs (a[i], b[i]) under each weighting of the stimuli: (n_weightings, n).

    `weights` (n_weightings, stimuli) are bootstrap counts; a weighted r with integer counts equals
    the r over the resampled stimulus list. Rows are centred on their full-sample mean first so the
    one-pass sums stay accurate in float64.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    w = np.asarray(weights, dtype=np.float64)
    n = w.sum(axis=1, keepdims=True)
    sa, sb = w @ a.T, w @ b.T
    saa, sbb, sab = w @ (a * a).T, w @ (b * b).T, w @ (a * b).T
    cov = sab - sa * sb / n
    va = saa - sa * sa / n
    vb = sbb - sb * sb / n
    denom = np.sqrt(np.clip(va, 0, None) * np.clip(vb, 0, None))
    # a resample where a row is (numerically) constant has no r
    tiny = 1e-12 * np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > tiny, cov / np.where(denom > 0, denom, 1.0), np.nan)


def complete_stimuli(responses: np.ndarray) -> np.ndarray:
    """Mask of stimuli (columns) where every row has a response: statistics over several sites use these."""
    return ~np.isnan(np.asarray(responses, dtype=np.float64)).any(axis=0)
