"""The product's rows: response vectors over the stimuli, each with stimulus weights from one of a few groups.

For row i of group g with weights w over the stimuli (all ones by default; a 0/1 mask restricts a row to a
subset of stimuli; integer counts give a bootstrap resample):

    z_i = w * (y_i - mean_w(y_i)) / ||sqrt(w) (y_i - mean_w(y_i))||

so that sum_s z_is a_su over a unit's activations is the numerator of Pearson r (precompute/match/engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class Standardized(NamedTuple):
    """RowSet.standardized(): z (rows, stimuli) float64, zero where a row has no weight; group (rows,);
    weights (groups, stimuli); row_valid (rows,): the row varies over its stimuli."""

    z: np.ndarray
    group: np.ndarray
    weights: np.ndarray
    row_valid: np.ndarray


@dataclass(frozen=True)
class RowSet:
    """The product's rows: response vectors (n_rows, n_stimuli) with per-group stimulus weights.

    group[i] selects the row of `weights` (n_groups, n_stimuli; >= 0) used for row i. Without
    weights every row uses every stimulus with weight 1. Entries of `values` with weight 0 are
    ignored (they may be NaN).
    """

    values: np.ndarray
    group: np.ndarray | None = None
    weights: np.ndarray | None = None

    @classmethod
    def from_matrix(cls, values: np.ndarray) -> RowSet:
        """Rows from a (rows x stimuli) matrix; NaN entries are left out of that row's correlations
        (rows with the same missing stimuli share a group)."""
        values = np.asarray(values, dtype=np.float64)
        present = np.isfinite(values)
        if present.all():
            return cls(values)
        masks, group = np.unique(present, axis=0, return_inverse=True)
        return cls(values, group.reshape(-1).astype(np.int64), masks.astype(np.float64))

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_stimuli(self) -> int:
        return int(self.values.shape[1])

    def resolved(self) -> tuple[np.ndarray, np.ndarray]:
        """(group (n_rows,), weights (n_groups, n_stimuli)) with the defaults filled in."""
        if self.weights is None:
            return np.zeros(self.n_rows, dtype=np.int64), np.ones((1, self.n_stimuli))
        weights = np.asarray(self.weights, dtype=np.float64)
        group = np.zeros(self.n_rows, np.int64) if self.group is None else np.asarray(self.group, np.int64)
        if weights.ndim != 2 or weights.shape[1] != self.n_stimuli:
            raise ValueError(f"weights must be (n_groups, {self.n_stimuli}); got {weights.shape}")
        if group.shape != (self.n_rows,) or group.min(initial=0) < 0 or group.max(initial=0) >= len(weights):
            raise ValueError("group must give every row a valid row of weights")
        if (weights < 0).any() or not np.isfinite(weights).all():
            raise ValueError("weights must be finite and >= 0")
        return group, weights

    def standardized(self) -> Standardized:
        """The rows standardised (z as in the module docstring); a row with zero weighted variance is invalid
        (it is never matched)."""
        group, weights = self.resolved()
        values = np.asarray(self.values, dtype=np.float64)
        w = weights[group]
        if not np.isfinite(values[w > 0]).all():
            raise ValueError("response values must be finite wherever their weight is > 0")
        y = np.where(w > 0, values, 0.0)
        wsum = w.sum(axis=1)
        mean = (w * y).sum(axis=1) / np.maximum(wsum, 1e-300)
        centred = np.where(w > 0, y - mean[:, None], 0.0)
        ss = (w * centred**2).sum(axis=1)
        scale = (w * y**2).sum(axis=1)
        row_valid = (wsum > 0) & (ss > 1e-20 * np.maximum(scale, 1e-300))
        z = np.where(row_valid[:, None], w * centred / np.sqrt(np.where(row_valid, ss, 1.0))[:, None], 0.0)
        return Standardized(z, group, weights, row_valid)
