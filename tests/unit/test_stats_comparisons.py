"""Paired comparison of two models: median of paired differences and the Wilcoxon signed-rank p."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from precompute.statistics.comparisons import paired_comparison


def _exact_signed_rank_p(d):
    """Two-sided exact p of the signed-rank statistic by enumerating every sign pattern (no ties/zeros)."""
    ranks = np.argsort(np.argsort(np.abs(d))) + 1
    observed = ranks[d > 0].sum()
    stats = np.array([sum(r for r, s in zip(ranks, signs, strict=True) if s)
                      for signs in itertools.product([0, 1], repeat=len(d))])
    return min(1.0, 2 * min(np.mean(stats <= observed), np.mean(stats >= observed)))


def test_paired_comparison_matches_exact_enumeration():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.4, 0.1, size=11), rng.normal(0.35, 0.1, size=11)
    diff, p = paired_comparison(a, b)
    assert diff == pytest.approx(np.median(a - b))
    assert p == pytest.approx(_exact_signed_rank_p(a - b))


def test_planted_better_model_is_significant_and_equal_models_are_not():
    rng = np.random.default_rng(1)
    b = rng.uniform(0.2, 0.6, size=60)
    diff, p = paired_comparison(b + 0.1 + rng.normal(0, 0.02, size=60), b)
    assert diff == pytest.approx(0.1, abs=0.02) and p < 1e-6
    _, p_null = paired_comparison(b + rng.normal(0, 0.02, size=60), b)
    assert p_null > 0.05
    assert paired_comparison(b, b) == (0.0, 1.0)


def test_paired_comparison_uses_only_sites_both_models_have():
    a = np.array([0.5, np.nan, 0.7, 0.9])
    b = np.array([0.4, 0.3, np.nan, 0.6])
    diff, _ = paired_comparison(a, b)
    assert diff == pytest.approx(np.median([0.1, 0.3]))
    assert np.isnan(paired_comparison(np.array([np.nan]), np.array([1.0]))[0])
