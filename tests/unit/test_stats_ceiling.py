"""Noise ceilings: correction for attenuation, Brain-Score's consistency ceiling, low-reliability flags."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.statistics.ceiling import (
    LOW_RELIABILITY_THRESHOLD,
    attenuation_corrected,
    ceiled_median,
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


def test_ceiled_median_equals_brute_force_joint_site_bootstrap():
    rng = np.random.default_rng(1)
    r = rng.uniform(0.2, 0.6, size=25)
    rel = rng.uniform(0.5, 0.95, size=25)
    r[3] = np.nan  # left out of both medians
    value, lo, hi = ceiled_median(r, rel, 300, np.random.default_rng(4))
    keep = np.isfinite(r)
    rk, relk = r[keep], rel[keep]
    assert value == pytest.approx(np.median(rk) / np.median(relk))
    idx = np.random.default_rng(4).integers(0, rk.size, size=(300, rk.size))
    boot = [np.median(rk[i]) / np.median(relk[i]) for i in idx]
    assert (lo, hi) == pytest.approx((np.percentile(boot, 2.5), np.percentile(boot, 97.5)))


def test_ceiled_median_without_reliability_is_nan():
    assert np.isnan(ceiled_median(np.array([0.3, 0.4]), np.array([np.nan, np.nan]), 10,
                                  np.random.default_rng(0))[0])
