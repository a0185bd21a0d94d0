"""Bootstrap machinery shared by every statistic: seeded generators, resampling, percentile intervals.

Intervals are percentile bootstrap intervals (the 2.5th and 97.5th percentiles of the statistic over
resamples): simple, transformation-invariant, and adequate for medians over ~100 sites.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable

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


def site_resamples(n_sites: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (n_resamples, n_sites) of sites drawn with replacement."""
    return rng.integers(0, n_sites, size=(n_resamples, n_sites))


def bootstrap_over_sites(values: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], n_resamples: int,
                         rng: np.random.Generator) -> np.ndarray:
    """`statistic` of `values` (sites first) over site resamples: returns (n_resamples, ...).

    `statistic` gets an array (n_resamples, n_sites, ...) and reduces axis 1; all columns of a row
    (e.g. all layers) share each resample, so per-layer intervals and the best layer stay paired.
    """
    values = np.asarray(values, dtype=np.float64)
    idx = site_resamples(values.shape[0], n_resamples, rng)
    out = []
    for start in range(0, n_resamples, _CHUNK):
        out.append(statistic(values[idx[start:start + _CHUNK]]))
    return np.concatenate(out, axis=0)


def nanmedian_axis1(x: np.ndarray) -> np.ndarray:
    """Median over axis 1 ignoring NaN (a site without a value in a layer); plain median when no NaN."""
    if np.isnan(x).any():
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, on purpose
            return np.nanmedian(x, axis=1)
    return np.median(x, axis=1)


def median_interval(values: np.ndarray, n_resamples: int, rng: np.random.Generator,
                    level: float = LEVEL) -> tuple[float, float, float]:
    """Median of the finite values and its percentile bootstrap interval over resampled sites."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    boot = bootstrap_over_sites(v, lambda s: np.median(s, axis=1), n_resamples, rng)
    lo, hi = percentile_interval(boot, level)
    return float(np.median(v)), float(lo), float(hi)


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
