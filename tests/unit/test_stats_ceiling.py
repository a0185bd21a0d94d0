"""Noise ceilings: correction for attenuation, Brain-Score's consistency ceiling, low-reliability flags."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.statistics.ceiling import (
    LOW_RELIABILITY_THRESHOLD,
    attenuation_corrected,
    brainscore_aggregate,
    explained_variance_ceiled,
    low_reliability_flags,
)


def test_attenuation_corrected_is_r_over_sqrt_reliability_and_undefined_without_reliability():
    r = np.array([0.5, 0.4, 0.3, 0.2, 0.1])
    rel = np.array([0.81, 0.64, 0.0, -0.2, np.nan])
    got = attenuation_corrected(r, rel)
    assert got[:2] == pytest.approx([0.5 / 0.9, 0.4 / 0.8])
    assert np.isnan(got[2:]).all()


def test_attenuation_correction_recovers_the_noiseless_r():
    """A site = signal + noise; its r with the signal, corrected by its split-half reliability, is ~1."""
    rng = np.random.default_rng(0)
    signal = rng.normal(size=4000)
    trials = signal[:, None] + rng.normal(scale=1.5, size=(4000, 20))
    half_a, half_b = trials[:, :10].mean(1), trials[:, 10:].mean(1)
    r_half = np.corrcoef(half_a, half_b)[0, 1]
    reliability = 2 * r_half / (1 + r_half)
    r = np.corrcoef(trials.mean(1), signal)[0, 1]
    assert r < 0.96 and attenuation_corrected(r, reliability) == pytest.approx(1.0, abs=0.02)


def test_low_reliability_flags_keep_unknown_as_nan():
    rel = np.array([0.9, LOW_RELIABILITY_THRESHOLD, 0.49, -0.1, np.nan])
    flags = low_reliability_flags(rel)
    assert flags[:4].tolist() == [0.0, 0.0, 1.0, 1.0] and np.isnan(flags[4])


def test_brainscore_aggregation_is_the_mean_over_splits_of_the_median_over_sites():
    per_split = np.array([[0.1, 0.5, 0.3, np.nan], [0.2, 0.2, 0.9, 0.4], [np.nan] * 4])
    assert brainscore_aggregate(per_split) == pytest.approx(np.mean([0.3, 0.3]))
    assert np.isnan(brainscore_aggregate(np.full((2, 3), np.nan)))


def test_explained_variance_ceiling_squares_r_and_keeps_its_sign():
    got = explained_variance_ceiled(np.array([0.6, -0.3, 0.5, 0.2]), np.array([0.8, 0.8, 0.0, np.nan]))
    assert got[:2] == pytest.approx([0.36 / 0.8, -0.09 / 0.8]) and np.isnan(got[2:]).all()
