"""The linear-SVM decoders of the `decoding` analysis (precompute/analyses/decoding.py), pure functions.

Protocols (how many runs, how C is chosen), z-scoring, fits (a small in-process cache: a fit is a
deterministic function of its data), stratified splits, choosing C, confusion matrices, conditions (i)
(`decode_within`) and (ii)/(iii) (`decode_transfer`), the random population's draw, and `shared_within`:
the decoders of a model-independent population, computed once per process and reused by every model.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Protocol:
    """How many runs and how C is chosen."""

    runs_within: int
    runs_transfer: int
    cv_splits: int
    c_grid: tuple[float, ...]
    per_run_c: bool
    test_fraction: float = 0.1


PAPER = Protocol(
    runs_within=25, runs_transfer=5, cv_splits=10, c_grid=(1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0), per_run_c=True
)
DEFAULT = Protocol(runs_within=10, runs_transfer=1, cv_splits=5, c_grid=(1e-3, 1e-2, 1e-1, 1.0), per_run_c=False)


def protocol_for(name: str) -> Protocol:
    return PAPER if name == "paper" else DEFAULT


# ---------------------------------------------------------------------------------------------- pure functions
def zscore_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and SD (SD 1 for a constant feature, which then standardises to 0)."""
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    return mean, np.where(sd > 0, sd, 1.0)


def zscore(x: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """x standardised with `stats` (default: its own)."""
    mean, sd = stats if stats is not None else zscore_stats(x)
    return (x - mean) / sd


def fit_svm(x: np.ndarray, y: np.ndarray, c: float):
    """A LinearSVC fitted on z-scored x; returns (classifier, z-score statistics).

    A fit is a deterministic function of (x, y, C) (the primal solver has no randomness), so a repeated fit
    (the neural decoder of condition (iii), used against the matched and the random units, and by every
    model) is taken from a small in-process cache instead of being refitted."""
    key = (_digest(x), _digest(y), float(c))
    hit = _FIT_CACHE.get(key)
    if hit is not None:
        _FIT_CACHE.move_to_end(key)
        return hit
    out = _fit_svm(x, y, c)
    _remember(_FIT_CACHE, key, out)
    return out


def _fit_svm(x: np.ndarray, y: np.ndarray, c: float):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    stats = zscore_stats(x)
    clf = LinearSVC(C=c, dual=False, max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few iterations short changes nothing here
        clf.fit(zscore(x, stats), y)
    return clf, stats


#: in-process caches (least recently used first): fits by (x, y, C) and the model-independent decoders
#: (neural populations, the pixels bar) by their inputs and seed keys, so every model after the first
#: reuses them; a cached result is the one the computation gives (same inputs, same seeded draws)
_FIT_CACHE: OrderedDict = OrderedDict()
_SHARED_CACHE: OrderedDict = OrderedDict()
CACHE_ENTRIES = 64


def _digest(a: np.ndarray) -> tuple:
    a = np.ascontiguousarray(a)
    return a.shape, a.dtype.str, hashlib.blake2b(a.view(np.uint8).reshape(-1), digest_size=16).digest()


def _remember(cache: OrderedDict, key, value) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > CACHE_ENTRIES:
        cache.popitem(last=False)


def stratified_split(y: np.ndarray, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: per category, round(test_fraction * count) (at least 1) stimuli to test."""
    train, test = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        k = max(1, round(test_fraction * len(idx))) if len(idx) > 1 else 0
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def choose_c(x: np.ndarray, y: np.ndarray, protocol: Protocol, rng: np.random.Generator) -> float:
    """The C of the grid with the best mean accuracy over `cv_splits` stratified 90/10 splits (ties: smaller C)."""
    scores = np.zeros(len(protocol.c_grid))
    for _ in range(protocol.cv_splits):
        tr, te = stratified_split(y, protocol.test_fraction, rng)
        for j, c in enumerate(protocol.c_grid):
            clf, stats = fit_svm(x[tr], y[tr], c)
            scores[j] += float((clf.predict(zscore(x[te], stats)) == y[te]).mean())
    return float(protocol.c_grid[int(np.argmax(scores))])


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Row-normalised confusion matrix (rows: true class; NaN row when a class is absent)."""
    m = np.zeros((n_classes, n_classes))
    np.add.at(m, (y_true, y_pred), 1.0)
    total = m.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        return m / np.where(total > 0, total, np.nan)


@dataclass
class RunResult:
    accuracy: float
    c: float
    confusion: np.ndarray


def decode_within(
    x_of_run, y: np.ndarray, protocol: Protocol, rng: np.random.Generator, n_classes: int, c: float | None = None
) -> list[RunResult]:
    """Condition (i): per run, a stratified 90/10 split; C per run (paper) or the given shared C.

    `x_of_run(run)` gives the run's features (stimuli, features): a fixed population, or a redrawn one."""
    out = []
    for run in range(protocol.runs_within):
        x = x_of_run(run)
        tr, te = stratified_split(y, protocol.test_fraction, rng)
        c_run = c if c is not None and not protocol.per_run_c else choose_c(x[tr], y[tr], protocol, rng)
        clf, stats = fit_svm(x[tr], y[tr], c_run)
        pred = clf.predict(zscore(x[te], stats))
        out.append(RunResult(float((pred == y[te]).mean()), c_run, confusion(y[te], pred, n_classes)))
    return out


def decode_transfer(
    train_of_run,
    test_of_run,
    y: np.ndarray,
    protocol: Protocol,
    rng: np.random.Generator,
    n_classes: int,
    c: float | None = None,
) -> list[RunResult]:
    """Conditions (ii)/(iii): fit on one population over all stimuli, test on the other (each z-scored on its own)."""
    out = []
    for run in range(protocol.runs_transfer):
        xtr, xte = train_of_run(run), test_of_run(run)
        c_run = c if c is not None and not protocol.per_run_c else choose_c(xtr, y, protocol, rng)
        clf, _ = fit_svm(xtr, y, c_run)
        pred = clf.predict(zscore(xte))
        out.append(RunResult(float((pred == y).mean()), c_run, confusion(y, pred, n_classes)))
    return out


def random_population(site_layers: np.ndarray, pool_layers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each site, the index (into the pool) of a random unit from the layer of its best unit.

    Drawn without replacement within a layer while the layer's pool lasts; a layer without pooled units
    falls back to the whole pool (logged by the caller)."""
    picks = np.empty(len(site_layers), dtype=np.int64)
    for layer in np.unique(site_layers):
        sites = np.flatnonzero(site_layers == layer)
        pool = np.flatnonzero(pool_layers == layer)
        if pool.size == 0:
            pool = np.arange(len(pool_layers))
        picks[sites] = rng.choice(pool, size=len(sites), replace=len(sites) > pool.size)
    return picks


def shared_within(
    key: tuple,
    x: np.ndarray,
    y: np.ndarray,
    protocol: Protocol,
    rng_of,
    n_classes: int,
    tune: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float | None, list[RunResult]]:
    """(shared C or None, condition (i) runs) of a model-independent population, whose generator `rng_of()` is
    seeded by `key` alone: computed once per process for the same inputs and reused by every model.

    `tune`: (features, labels) to choose the shared C on instead of (x, y) (other stimuli than the runs')."""
    tune_x, tune_y = tune if tune is not None else (x, y)
    full = (key, protocol, _digest(x), _digest(y), _digest(tune_x), n_classes)
    hit = _SHARED_CACHE.get(full)
    if hit is not None:
        _SHARED_CACHE.move_to_end(full)
        return hit
    rng = rng_of()
    c = None if protocol.per_run_c else choose_c(tune_x, tune_y, protocol, rng)
    out = (c, decode_within(lambda run: x, y, protocol, rng, n_classes, c))
    _remember(_SHARED_CACHE, full, out)
    return out
