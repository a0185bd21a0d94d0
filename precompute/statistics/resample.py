"""Bootstrap machinery shared by every statistic: seeded generators, resampling, percentile intervals.

Intervals are percentile bootstrap intervals (the 2.5th and 97.5th percentiles of the statistic over
resamples): simple, transformation-invariant, and adequate for medians over ~100 sites.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
PAPER_RESAMPLES = 10_000
LEVEL = 0.95
#: stimulus-bootstrap count rows built at once (memory: chunk x stimuli x 8 bytes)
_CHUNK = 250


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """A generator that depends on the seed and on names (analysis, region, ...), not on call order."""
    return np.random.default_rng([int(seed), *(zlib.crc32(k.encode()) for k in keys)])


def percentile_interval(samples: np.ndarray, level: float = LEVEL, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) percentile interval of bootstrap samples along `axis`, ignoring NaN samples."""
    tail = (1.0 - level) / 2.0 * 100.0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column gives a NaN interval, on purpose
        lo = np.nanpercentile(samples, tail, axis=axis)
        hi = np.nanpercentile(samples, 100.0 - tail, axis=axis)
    return lo, hi


def nanmedian_axis1(x: np.ndarray) -> np.ndarray:
    """Median over axis 1 ignoring NaN (a site without a value in a layer); plain median when no NaN."""
    if np.isnan(x).any():
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, on purpose
            return np.nanmedian(x, axis=1)
    return np.median(x, axis=1)


def stimulus_count_chunks(n_stimuli: int, n_resamples: int, rng: np.random.Generator):
    """Yield bootstrap resamples of stimuli as count matrices (chunk, n_stimuli) float64.

    A resample drawn with replacement is equivalent to weighting each stimulus by how often it was
    drawn; weighted sums then give every site's resampled r in one matrix product per chunk.
    """
    done = 0
    while done < n_resamples:
        m = min(_CHUNK, n_resamples - done)
        draws = rng.integers(0, n_stimuli, size=(m, n_stimuli))
        flat = (np.arange(m)[:, None] * n_stimuli + draws).ravel()
        counts = np.bincount(flat, minlength=m * n_stimuli).reshape(m, n_stimuli).astype(np.float64)
        done += m
        yield counts


# ---------------------------------------------------------------------------------------------- clustered resampling
@dataclass(frozen=True)
class Clusters:
    """Who is resampled together: members (sites or stimuli) with their cluster, for a hierarchical bootstrap.

    A resample draws the clusters with replacement, then, within every drawn cluster, its members with
    replacement (the two-stage bootstrap of multi-level data; Saravanan et al. 2020, Neurons, Behavior,
    Data analysis and Theory): stimuli that are views of one object, or sites recorded on one array of one
    animal, move together, so an interval reflects how much a score would change with other objects or
    other arrays, not only with other views or electrodes. Every member its own cluster is the ordinary
    i.i.d. bootstrap (`Clusters.iid`), drawn exactly as before clusters existed.

    codes: (n,) cluster of each member, 0..k-1; name: what a cluster is ("object", "animal/array"; "" for
    i.i.d.)."""

    codes: np.ndarray
    name: str = ""

    @classmethod
    def iid(cls, n: int) -> Clusters:
        return cls(np.arange(n, dtype=np.int64), "")

    @classmethod
    def from_labels(cls, labels: Sequence, name: str) -> Clusters:
        """Clusters from one label per member (missing labels form one cluster of their own)."""
        values = np.array(
            ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in labels], dtype=object
        ).astype(str)
        return cls(np.unique(values, return_inverse=True)[1].reshape(-1).astype(np.int64), name)

    @property
    def n(self) -> int:
        return len(self.codes)

    @property
    def k(self) -> int:
        return int(self.codes.max()) + 1 if len(self.codes) else 0

    @property
    def is_iid(self) -> bool:
        return not self.name or self.k == self.n

    def subset(self, index: np.ndarray) -> Clusters:
        """The clusters of members `index` (renumbered)."""
        codes = self.codes[np.asarray(index, dtype=np.int64)]
        return Clusters(np.unique(codes, return_inverse=True)[1].reshape(-1).astype(np.int64), self.name)

    def describe(self, noun: str) -> str:
        """'sites i.i.d. (168)' or 'stimuli by object (64 clusters, views within)'."""
        if self.is_iid:
            return f"{noun} i.i.d. ({self.n})"
        return f"{noun} by {self.name} ({self.k} cluster{'s' if self.k != 1 else ''}, {noun} within)"

    def counts(self, n_resamples: int, rng: np.random.Generator):
        """Yield resamples as count matrices (chunk, n) float64: how often each member was drawn."""
        n = self.n
        if self.is_iid:
            yield from stimulus_count_chunks(n, n_resamples, rng)
            return
        members = [np.flatnonzero(self.codes == c) for c in range(self.k)]
        done = 0
        while done < n_resamples:
            m = min(_CHUNK, n_resamples - done)
            draws = rng.integers(0, self.k, size=(m, self.k))
            times = np.zeros((m, self.k), dtype=np.int64)
            np.add.at(times, (np.repeat(np.arange(m), self.k), draws.reshape(-1)), 1)
            flat = []
            for c, mem in enumerate(members):
                total = times[:, c] * len(mem)
                picks = mem[rng.integers(0, len(mem), size=int(total.sum()))]
                flat.append(np.repeat(np.arange(m), total) * n + picks)
            counts = np.bincount(np.concatenate(flat), minlength=m * n).reshape(m, n).astype(np.float64)
            done += m
            yield counts


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(rows,) median of each row of `values` with integer `weights` (how often each value was drawn):
    exactly np.median of the row's values repeated by their weights. NaN values are left out; NaN for a row
    with no weight on a finite value."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[1] == 0:
        return np.full(len(values), np.nan)
    weights = np.broadcast_to(np.asarray(weights, dtype=np.float64), values.shape)
    finite = np.isfinite(values)
    v = np.where(finite, values, np.inf)
    w = np.where(finite, weights, 0.0)
    order = np.argsort(v, axis=1, kind="stable")
    v = np.take_along_axis(v, order, axis=1)
    cw = np.cumsum(np.take_along_axis(w, order, axis=1), axis=1)
    total = cw[:, -1]
    lo_k = np.floor((total - 1) / 2)
    hi_k = np.floor(total / 2)
    lo = np.argmax(cw > lo_k[:, None], axis=1)
    hi = np.argmax(cw > hi_k[:, None], axis=1)
    rows = np.arange(len(values))
    with np.errstate(invalid="ignore"):
        out = (v[rows, lo] + v[rows, hi]) / 2.0
    return np.where(total > 0, out, np.nan)


def site_interval(
    values: np.ndarray, clusters: Clusters, n_resamples: int, rng: np.random.Generator, level: float = LEVEL
) -> tuple[float, float, float, str]:
    """Median of the finite per-site values with its bootstrap interval over sites (hierarchical when the
    sites have clusters), and the scheme: (median, low, high, scheme)."""
    v = np.asarray(values, dtype=np.float64)
    keep = np.flatnonzero(np.isfinite(v))
    if keep.size == 0:
        return float("nan"), float("nan"), float("nan"), ""
    sub = clusters.subset(keep)
    boot = np.concatenate([weighted_median(np.broadcast_to(v[keep], c.shape), c) for c in sub.counts(n_resamples, rng)])
    lo, hi = percentile_interval(boot, level)
    return float(np.median(v[keep])), float(lo), float(hi), f"{sub.describe('sites')}; {n_resamples} resamples"
