"""The shared receptive-field estimator (Figure S2 protocol) against known fields and a brute-force map."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf

from precompute.datasets.rf_mapping import (
    ONE_SD_LEVEL,
    estimate_rf,
    grid_centres_deg,
    square_grid_stimuli,
)


def _gauss_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + erf(z / math.sqrt(2)))


def grid_for_gaussian(x0: float, y0: float, sigma: float, n: int = 8, extent: float = 8.0) -> np.ndarray:
    """Response of a Gaussian field to each square = the field's mass inside the square (row 0 = top)."""
    xs, ys = grid_centres_deg(n, extent)
    half = extent / n / 2
    px = _gauss_cdf((xs + half - x0) / sigma) - _gauss_cdf((xs - half - x0) / sigma)
    py = _gauss_cdf((ys + half - y0) / sigma) - _gauss_cdf((ys - half - y0) / sigma)
    return np.outer(py, px)


def expected_size(sigma: float, smooth: float = 1.0, square: float = 1.0) -> float:
    """1-SD diameter of the Gaussian field blurred by the square (variance square^2/12) and the smoothing."""
    return 2 * math.sqrt(sigma**2 + smooth**2 + square**2 / 12)


@pytest.mark.parametrize(("x0", "y0", "sigma"), [(0.0, 0.0, 0.3), (1.3, -2.1, 0.6), (-1.7, 2.2, 1.2), (0.4, 1.0, 2.0)])
def test_known_gaussian_field_is_found_at_its_place_and_size(x0, y0, sigma):
    est = estimate_rf(grid_for_gaussian(x0, y0, sigma))
    assert est.x_deg == pytest.approx(x0, abs=0.25)
    assert est.y_deg == pytest.approx(y0, abs=0.25)
    assert est.size_deg == pytest.approx(expected_size(sigma), rel=0.12)
    assert est.map.shape == (64, 64)
    assert est.map_size == 64


def test_plus_y_is_up_and_row_zero_is_the_top():
    grid = grid_for_gaussian(0.5, 2.5, 0.5)
    assert np.unravel_index(np.argmax(grid), grid.shape)[0] == 1  # y = +2.5 is the second row from the top
    est = estimate_rf(grid)
    assert est.y_deg > 2.0
    assert np.unravel_index(np.nanargmax(est.map), est.map.shape)[0] < 32  # peak in the top half of the map
    low = estimate_rf(grid[::-1])
    assert low.y_deg == pytest.approx(-est.y_deg, abs=1e-9)
    right = estimate_rf(grid_for_gaussian(2.5, 0.0, 0.5))
    assert right.x_deg > 2.0


def test_size_grows_with_the_field_and_map_is_a_density():
    sizes = [estimate_rf(grid_for_gaussian(0.0, 0.0, s)).size_deg for s in (0.25, 0.75, 1.5)]
    assert sizes[0] < sizes[1] < sizes[2]
    est = estimate_rf(grid_for_gaussian(0.3, -0.2, 0.8))
    cell = (8.0 / est.map_size) ** 2
    assert float(est.map.sum()) * cell == pytest.approx(1.0, rel=1e-5)


def test_map_matches_a_brute_force_continuous_reference():
    """The painted squares (zero beyond the extent) convolved with a 1-degree Gaussian, computed in closed
    form (float64, one square at a time), equal the estimator's map up to discretisation."""
    rng = np.random.default_rng(3)
    grid = rng.normal(0, 1, (8, 8))
    est = estimate_rf(grid, map_size=64)
    g = np.clip(grid, 0, None)
    xs, ys = grid_centres_deg()
    p = (np.arange(64) + 0.5) / 64 * 8 - 4  # map cell centres (x left->right; y = -p top->bottom)
    ref = np.zeros((64, 64))
    for r in range(8):
        for c in range(8):
            wx = _gauss_cdf(xs[c] + 0.5 - p) - _gauss_cdf(xs[c] - 0.5 - p)
            wy = _gauss_cdf(ys[r] + 0.5 + p) - _gauss_cdf(ys[r] - 0.5 + p)
            ref += g[r, c] * np.outer(wy, wx)
    ref /= ref.sum() * (8 / 64) ** 2
    assert np.allclose(est.map, ref, rtol=0.03, atol=0.03 * ref.max())
    # the 1-SD region of the reference, by brute force over cells
    peak = np.unravel_index(np.argmax(ref), ref.shape)
    assert est.size_deg <= 2 * math.sqrt((ref >= ref[peak] * ONE_SD_LEVEL).sum() * (8 / 64) ** 2 / math.pi) + 0.2


@pytest.mark.parametrize("grid", [np.zeros((8, 8)), -np.ones((8, 8)), np.full((8, 8), np.nan)])
def test_no_response_gives_nans_not_a_crash(grid):
    est = estimate_rf(grid)
    assert math.isnan(est.x_deg) and math.isnan(est.y_deg) and math.isnan(est.size_deg)
    assert est.map.shape == (64, 64) and np.isnan(est.map).all()


def test_flat_64_vector_is_accepted_and_bad_shapes_are_refused():
    grid = grid_for_gaussian(1.0, 1.0, 0.5)
    assert estimate_rf(grid.ravel()).x_deg == pytest.approx(estimate_rf(grid).x_deg)
    with pytest.raises(ValueError, match="square"):
        estimate_rf(np.ones((4, 8)))


@pytest.mark.parametrize("size_px", [256, 224])
def test_square_grid_stimuli_put_each_square_at_its_grid_position(size_px):
    squares, blank = square_grid_stimuli(size_px)
    assert squares.shape == (64, size_px, size_px) and blank.shape == (size_px, size_px)
    assert np.all(blank == 0.5)
    xs, ys = grid_centres_deg()
    deg = (np.arange(size_px) + 0.5) / size_px * 8 - 4
    side_px = size_px / 8
    for k in (0, 7, 27, 56, 63):
        r, c = divmod(k, 8)
        rows, cols = np.nonzero(squares[k] == 1.0)
        assert abs(len(rows) - side_px**2) <= 2 * side_px + 1
        assert deg[cols].mean() == pytest.approx(xs[c], abs=0.5 * 8 / size_px + 1e-9)
        assert (-deg[rows]).mean() == pytest.approx(ys[r], abs=0.5 * 8 / size_px + 1e-9)  # row 0 = top: +y
        others = np.ones_like(squares[k], dtype=bool)
        others[rows, cols] = False
        assert np.all(squares[k][others] == 0.5)


def test_mapping_a_simulated_gaussian_unit_with_the_stimuli_recovers_it():
    """End to end: a linear unit with a Gaussian field over the image, probed with the stimuli."""
    size = 128
    squares, blank = square_grid_stimuli(size)
    deg = (np.arange(size) + 0.5) / size * 8 - 4
    x0, y0, sigma = -1.5, 1.0, 0.7
    w = np.exp(-((deg[None, :] - x0) ** 2 + (-deg[:, None] - y0) ** 2) / (2 * sigma**2))
    resp = (squares * w).sum(axis=(1, 2)) - (blank * w).sum()
    est = estimate_rf(resp.reshape(8, 8))
    assert est.x_deg == pytest.approx(x0, abs=0.25)
    assert est.y_deg == pytest.approx(y0, abs=0.25)
    assert est.size_deg == pytest.approx(expected_size(sigma), rel=0.12)
