"""Receptive fields from a squares-on-a-grid mapping experiment (the seed paper's Figure S2).

One protocol and one estimator serve recorded sites, the synthetic sites, and (the analyses issue) model
units, so their fields are comparable:

- stimuli (`square_grid_stimuli`): a white square of `square_deg` (1 degree) on a mean-gray background at
  each of the 64 positions of an 8 x 8 grid covering the central `extent_deg` (8 degrees), plus a blank
  gray image; the response to a square is the response to it minus the response to the blank;
- estimator (`estimate_rf`), after the paper: "Response maps were smoothed with a Gaussian kernel of
  bandwidth 1 degree and normalized, then receptive fields were defined by the contours at which
  probability density equaled that of a normal distribution at 1 standard deviation."

Grid and map orientation (the `site_rf_maps` contract, "row-major, +y up"): arrays are stored like the
image they describe. Row 0 is the TOP row of the visual field (y = +extent/2 side), row -1 the bottom;
column 0 is the left (x = -extent/2 side). So `grid[r, c]` is the response to the square drawn at image
row block r, column block c, and `square_grid_stimuli()[0][r * 8 + c]` is that square's image. Plotting
with y pointing up means flipping rows (or, in plotly, passing the descending y values of
`grid_centres_deg`). Degrees are +x right, +y up, (0, 0) at fixation (the image centre).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

GRID = 8
EXTENT_DEG = 8.0
SQUARE_DEG = 1.0
SMOOTH_DEG = 1.0
MAP_SIZE = 64
#: density ratio of a 2-D normal at 1 SD to its peak
ONE_SD_LEVEL = math.exp(-0.5)


@dataclass(frozen=True)
class RFEstimate:
    """A receptive field: centre (degrees, +x right, +y up), diameter of the 1-SD contour (degrees, as
    an equivalent circle), and the smoothed, normalised density map (map_size x map_size, row 0 = top).
    All NaN when the grid had no positive response."""

    x_deg: float
    y_deg: float
    size_deg: float
    map: np.ndarray
    extent_deg: float = EXTENT_DEG

    @property
    def map_size(self) -> int:
        return int(self.map.shape[0])


def grid_centres_deg(n: int = GRID, extent_deg: float = EXTENT_DEG) -> tuple[np.ndarray, np.ndarray]:
    """Centres of an n x n grid over [-extent/2, extent/2]: (x per column left->right, y per row top->bottom)."""
    step = extent_deg / n
    x = -extent_deg / 2 + step * (np.arange(n) + 0.5)
    return x, x[::-1].copy()


def square_grid_stimuli(
    size_px: int,
    extent_deg: float = EXTENT_DEG,
    square_deg: float = SQUARE_DEG,
    background: float = 0.5,
    image_deg: float | None = None,
    n: int = GRID,
) -> tuple[np.ndarray, np.ndarray]:
    """The mapping images: (squares float32 (n*n, size_px, size_px) in grid row-major order, blank (size_px,
    size_px)), values in [0, 1] (white square = 1.0).

    The image spans `image_deg` degrees (default: `extent_deg`, as for the 8-degree HvM images); a square
    covers every pixel whose centre lies inside it, so edges are sharp at any resolution.
    """
    if size_px < n:
        raise ValueError(f"size_px must be at least {n}, got {size_px}")
    image_deg = extent_deg if image_deg is None else image_deg
    deg = (np.arange(size_px) + 0.5) / size_px * image_deg - image_deg / 2  # pixel centres, left->right
    xs, ys = grid_centres_deg(n, extent_deg)
    blank = np.full((size_px, size_px), background, dtype=np.float32)
    squares = np.empty((n * n, size_px, size_px), dtype=np.float32)
    half = square_deg / 2
    for r, yc in enumerate(ys):
        rows = np.abs(-deg - yc) < half  # image row i is at y = -deg[i] (rows run top->bottom)
        for c, xc in enumerate(xs):
            cols = np.abs(deg - xc) < half
            img = blank.copy()
            img[np.ix_(rows, cols)] = 1.0
            squares[r * n + c] = img
    return squares, blank


def estimate_rf(
    grid_responses: np.ndarray, extent_deg: float = EXTENT_DEG, smooth_deg: float = SMOOTH_DEG, map_size: int = MAP_SIZE
) -> RFEstimate:
    """Estimate a receptive field from an (n, n) grid of square responses (minus blank; row 0 = top).

    Steps: negative responses clipped to 0; each square's response painted over the area it covers on a
    map_size x map_size map of the grid's extent (the squares tile it); smoothed with a Gaussian of SD
    `smooth_deg`, taking the response beyond the mapped extent as 0 (unbiased for fields inside the
    extent; re-weighting the edge instead pushes centres outwards by ~0.3 degrees); normalised to a
    probability density (integral 1 over the extent). The field is the connected region
    around the peak where the density is at least that of a fitted 2-D normal at 1 SD (peak x e^-1/2);
    its size is the diameter of the circle of equal area and its centre the density-weighted centroid of
    that region (robust to the noise floor that a whole-map centroid would average in, and not quantised
    like the peak). For a Gaussian field of SD sigma the size is about 2 * sqrt(sigma^2 + smooth^2 +
    square^2 / 12): the 1-degree squares and the smoothing make it an upper bound, as the paper notes.
    """
    from scipy import ndimage

    g = np.asarray(grid_responses, dtype=np.float64)
    if g.ndim == 1 and round(math.sqrt(g.size)) ** 2 == g.size:
        g = g.reshape(round(math.sqrt(g.size)), -1)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"grid_responses must be a square (n, n) grid, got shape {g.shape}")
    n = g.shape[0]
    nan_map = np.full((map_size, map_size), np.nan, dtype=np.float32)
    g = np.where(np.isfinite(g), np.clip(g, 0, None), 0.0)
    if not (g > 0).any():
        return RFEstimate(math.nan, math.nan, math.nan, nan_map, extent_deg)
    # paint each square over its area (map cells whose centre falls in the square)
    cell = (np.arange(map_size) + 0.5) / map_size  # 0..1 across the extent
    idx = np.minimum((cell * n).astype(int), n - 1)
    fine = g[np.ix_(idx, idx)]
    sigma_px = smooth_deg / extent_deg * map_size
    smoothed = ndimage.gaussian_filter(fine, sigma_px, mode="constant", cval=0.0, truncate=5.0)
    cell_area = (extent_deg / map_size) ** 2
    total = smoothed.sum() * cell_area
    if not np.isfinite(total) or total <= 0:
        return RFEstimate(math.nan, math.nan, math.nan, nan_map, extent_deg)
    density = smoothed / total
    peak_at = np.unravel_index(int(np.argmax(density)), density.shape)
    above = density >= density[peak_at] * ONE_SD_LEVEL
    labels, _ = ndimage.label(above)
    region = labels == labels[peak_at]
    w = density * region
    centres = (np.arange(map_size) + 0.5) / map_size * extent_deg - extent_deg / 2
    x = float((w.sum(axis=0) * centres).sum() / w.sum())
    y = float((w.sum(axis=1) * -centres).sum() / w.sum())  # row 0 is the top: y = -centres[row]
    size = 2.0 * math.sqrt(region.sum() * cell_area / math.pi)
    return RFEstimate(x, y, size, density.astype(np.float32), extent_deg)
