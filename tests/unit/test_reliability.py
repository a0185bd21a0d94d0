"""split_half_reliability against a brute-force loop implementation of the same definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from precompute.datasets.reliability import split_half_reliability


def brute_force(trials: np.ndarray, n_splits: int = 10, seed: int = 0) -> np.ndarray:
    """Per site: median over splits of the Spearman-Brown-corrected Pearson r between half means (loops)."""
    n_sites, n_stim, n_reps = trials.shape
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(n_reps) for _ in range(n_splits)]
    out = np.empty(n_sites)
    for s in range(n_sites):
        values = []
        for perm in perms:
            halves = (perm[: n_reps // 2], perm[n_reps // 2 :])
            a, b = [], []
            for i in range(n_stim):
                ha = [float(trials[s, i, k]) for k in halves[0] if not math.isnan(trials[s, i, k])]
                hb = [float(trials[s, i, k]) for k in halves[1] if not math.isnan(trials[s, i, k])]
                # a stimulus counts only if both halves have a trial for every site (shared mask)
                if all(any(not math.isnan(trials[t, i, k]) for k in h) for t in range(n_sites) for h in halves):
                    a.append(sum(ha) / len(ha))
                    b.append(sum(hb) / len(hb))
            ma, mb = sum(a) / len(a), sum(b) / len(b)
            cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
            va = sum((x - ma) ** 2 for x in a)
            vb = sum((y - mb) ** 2 for y in b)
            r = cov / math.sqrt(va * vb)
            values.append(2 * r / (1 + r))
        out[s] = float(np.median(values))
    return out


def test_matches_brute_force_on_poisson_trials():
    rng = np.random.default_rng(1)
    signal = rng.gamma(2.0, 1.0, (5, 30)) * rng.uniform(0.2, 3.0, (5, 1))
    trials = rng.poisson(signal[:, :, None], (5, 30, 12)).astype(np.float32)
    np.testing.assert_allclose(split_half_reliability(trials, 10, seed=7), brute_force(trials, 10, seed=7), atol=1e-9)


def test_matches_brute_force_with_missing_repetitions():
    rng = np.random.default_rng(2)
    trials = rng.normal(rng.normal(0, 1, (4, 25))[:, :, None], 1.0, (4, 25, 9))
    trials[:, 3, 5:] = np.nan  # stimulus 3 had only 5 repetitions
    trials[:, 10, :] = np.nan  # stimulus 10 was never shown
    got = split_half_reliability(trials, 6, seed=0)
    np.testing.assert_allclose(got, brute_force(trials, 6, seed=0), atol=1e-9)


def test_reliable_sites_score_high_and_noise_scores_near_zero():
    rng = np.random.default_rng(3)
    signal = rng.normal(0, 1, (1, 400))
    reliable = signal[:, :, None] + rng.normal(0, 0.5, (1, 400, 20))
    noise = rng.normal(0, 1, (1, 400, 20))
    rel = split_half_reliability(np.concatenate([reliable, noise]))
    assert rel[0] > 0.95
    assert abs(rel[1]) < 0.2


def test_refuses_bad_shapes():
    with pytest.raises(ValueError, match="repetitions"):
        split_half_reliability(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        split_half_reliability(np.zeros((2, 3, 1)))
