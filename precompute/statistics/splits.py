"""Stimulus splits for cross-validation, stratified by object: 0/1 training masks over stimuli (idx order).

Stratifying by object (every object keeps its share of training stimuli) is Brain-Score's convention
for HvM (`stratification_coord="object_name"`): a held-out set never lacks a whole object, so the
held-out r measures generalisation to new views of known objects, not to new objects.

    split_halves       n random halves, each returned with its complement (both directions)
    shuffle_splits     n random (1 - test_size) / test_size splits (Brain-Score's neuron_to_neuron: 10 x 90/10)
    fraction_masks     one random training subset per fraction (the selection curve, Figure S1)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _labels(strata: Sequence | None, n: int) -> np.ndarray:
    if strata is None:
        return np.zeros(n, dtype=np.int64)
    values = np.asarray(pd_safe(strata), dtype=object)
    if len(values) != n:
        raise ValueError(f"strata has {len(values)} labels for {n} stimuli")
    _, codes = np.unique(values.astype(str), return_inverse=True)
    return codes.reshape(-1)


def pd_safe(values: Sequence) -> list:
    """Labels as a list, missing labels (None/NaN) as one shared label "" (they form their own stratum)."""
    out = []
    for v in values:
        out.append("" if v is None or (isinstance(v, float) and np.isnan(v)) else v)
    return out


def stratified_subset(strata: Sequence | None, n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask choosing round(fraction x size) stimuli of every stratum (at least one, never all
    of a stratum with more than one stimulus), at random."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1); got {fraction}")
    labels = _labels(strata, n)
    mask = np.zeros(n, dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        take = round(fraction * members.size)
        take = min(max(take, 1), max(members.size - 1, 1))
        mask[rng.choice(members, size=take, replace=False)] = True
    return mask


def split_halves(strata: Sequence | None, n: int, n_splits: int, rng: np.random.Generator) -> np.ndarray:
    """(2 * n_splits, n) boolean training masks: each random stratified half followed by its complement.

    Each training mask's held-out set is its complement, so every split is used in both directions."""
    out = []
    for _ in range(n_splits):
        half = stratified_subset(strata, n, 0.5, rng)
        out += [half, ~half]
    return np.array(out, dtype=bool).reshape(2 * n_splits, n)


def shuffle_splits(strata: Sequence | None, n: int, n_splits: int, test_size: float,
                   rng: np.random.Generator) -> np.ndarray:
    """(n_splits, n) boolean training masks of independent stratified (1 - test_size) / test_size splits
    (like scikit-learn's StratifiedShuffleSplit); the held-out set of each is its complement."""
    return np.array([~stratified_subset(strata, n, test_size, rng) for _ in range(n_splits)],
                    dtype=bool).reshape(n_splits, n)


def fraction_masks(strata: Sequence | None, n: int, fractions: Sequence[float],
                   rng: np.random.Generator) -> np.ndarray:
    """(len(fractions), n) boolean training masks, one stratified random subset per fraction."""
    return np.array([stratified_subset(strata, n, f, rng) for f in fractions], dtype=bool).reshape(len(fractions), n)
