"""V4-like image features of the hidden encoding model (encoding.py): oriented energy, curvature, contrast.

Oriented energy is the quadrature Gabor amplitude at 4 orientations x 3 spatial frequencies (1-4
cycles/degree); curvature-like conjunctions are the sqrt of the product of orthogonal orientations'
energies (corners, junctions, curves); ON/OFF centre-surround contrast is rectified DoG output.
`gaussian_weights` are the receptive fields' pooling weights on the same grid.

Images are 256 x 256 covering 8 degrees; the finest Gabors are applied at 128 x 128 (16 px/degree), the
rest at 64 x 64, where V4 pools.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

VISUAL_DEGREES = 8.0
FILTER_SIZE = 128
POOL_SIZE = 64
ORIENTATIONS = 4
WAVELENGTHS_PX = (4.0, 8.0, 16.0)  # at 128 px over 8 degrees: 4, 2, 1 cycles/degree
DOG_SIGMAS_PX = (2.0, 4.0)
N_GABOR = ORIENTATIONS * len(WAVELENGTHS_PX)
N_CURV = 2 * len(WAVELENGTHS_PX)
N_FEATURES = N_GABOR + N_CURV + 2 * len(DOG_SIGMAS_PX)


@lru_cache(maxsize=4)
def _gabor_bank(size: int, wavelengths: tuple[float, ...]) -> np.ndarray:
    """Frequency responses of one-sided Gabor filters (the inverse FFT is the quadrature pair), one per
    (wavelength, orientation), wavelength-major; zero at DC."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    out = []
    for lam in wavelengths:
        f0 = 1.0 / lam
        sf = 0.35 * f0  # about one octave of bandwidth
        for k in range(ORIENTATIONS):
            th = math.pi * k / ORIENTATIONS
            g = np.exp(-((fx - f0 * math.cos(th)) ** 2 + (fy - f0 * math.sin(th)) ** 2) / (2 * sf**2))
            g[0, 0] = 0.0
            out.append(g)
    return np.array(out, dtype=np.complex64)


@lru_cache(maxsize=2)
def _fine_gabor_windows(size: int, out: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each finest-scale Gabor: (row indices, column indices) of an out x out window of the size x size
    spectrum centred on the filter's peak, and the filter on that window.

    The amplitude (envelope) of a narrow-band filter output is band-limited around the filter's centre
    frequency, so demodulating (taking the window around the peak as baseband) and inverse-transforming
    at out x out gives the amplitude sampled every size/out pixels: 4x cheaper than filtering at full
    size and pooling, and the Gaussian filter is below 1e-3 of its peak outside the window.
    """
    bank = _gabor_bank(size, WAVELENGTHS_PX[:1])
    offsets = np.rint(np.fft.fftfreq(out) * out).astype(int)
    res = []
    for k in range(ORIENTATIONS):
        g = bank[k].real
        py, px = np.unravel_index(int(np.argmax(g)), g.shape)
        rows = (py + offsets) % size
        cols = (px + offsets) % size
        res.append((rows, cols, g[np.ix_(rows, cols)].astype(np.complex64)))
    return res


@lru_cache(maxsize=4)
def _dog_pair(size: int, sigmas: tuple[float, float]) -> np.ndarray:
    """Two real DoG filters packed as D1 + i*D2: one inverse FFT returns both (real and imaginary parts)."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    f2 = fx**2 + fy**2
    d = [np.exp(-2 * math.pi**2 * s**2 * f2) - np.exp(-2 * math.pi**2 * (3 * s) ** 2 * f2) for s in sigmas]
    return (d[0] + 1j * d[1]).astype(np.complex64)


def average_pool(x: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool the last two axes by `factor` (strided sums: much faster than reshape-mean)."""
    if factor == 1:
        return x
    acc = None
    for i in range(factor):
        for j in range(factor):
            part = x[..., i::factor, j::factor]
            acc = part.astype(np.float32) if acc is None else acc + part
    return acc * np.float32(1.0 / factor**2)


def feature_maps(images: np.ndarray) -> np.ndarray:
    """V4-like feature maps (n, N_FEATURES, 64, 64) float32 of images (n, 256, 256): uint8, or float in
    [0, 1] (0.5 = gray).

    Channel order: Gabor amplitude (wavelength-major, 4 orientations each), curvature conjunctions
    (per wavelength: 0/90 and 45/135 degrees), DoG ON (small, large centre), DoG OFF (small, large).
    The finest Gabors are applied at 128 x 128 and demodulated to 64 x 64 (`_fine_gabor_windows`); the
    coarser filters run at 64 x 64 (the same filters in degrees).
    """
    import scipy.fft

    x = np.asarray(images)
    scale = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
    x = average_pool(x, x.shape[-1] // FILTER_SIZE) * np.float32(scale) - np.float32(0.5)
    x64 = average_pool(x, FILTER_SIZE // POOL_SIZE)
    r = FILTER_SIZE // POOL_SIZE
    n = x.shape[0]
    out = np.empty((n, N_FEATURES, POOL_SIZE, POOL_SIZE), dtype=np.float32)
    coarse = _gabor_bank(POOL_SIZE, tuple(w / r for w in WAVELENGTHS_PX[1:]))
    spec = scipy.fft.fft2(x, workers=-1)
    for k, (rows, cols, g) in enumerate(_fine_gabor_windows(FILTER_SIZE, POOL_SIZE)):
        band = spec[:, rows[:, None], cols[None, :]] * g
        out[:, k] = np.abs(scipy.fft.ifft2(band, workers=-1)) * np.float32(1.0 / r**2)
    spec64 = scipy.fft.fft2(x64, workers=-1)
    out[:, ORIENTATIONS:N_GABOR] = np.abs(scipy.fft.ifft2(spec64[:, None] * coarse[None], workers=-1))
    for j in range(len(WAVELENGTHS_PX)):
        a = out[:, j * ORIENTATIONS : (j + 1) * ORIENTATIONS]
        out[:, N_GABOR + 2 * j] = np.sqrt(a[:, 0] * a[:, 2])
        out[:, N_GABOR + 2 * j + 1] = np.sqrt(a[:, 1] * a[:, 3])
    d = scipy.fft.ifft2(spec64 * _dog_pair(POOL_SIZE, tuple(s / r for s in DOG_SIGMAS_PX)), workers=-1)
    on = N_GABOR + N_CURV
    out[:, on] = np.maximum(d.real, 0)
    out[:, on + 1] = np.maximum(d.imag, 0)
    out[:, on + 2] = np.maximum(-d.real, 0)
    out[:, on + 3] = np.maximum(-d.imag, 0)
    return out


def gaussian_weights(x: np.ndarray, y: np.ndarray, sigma: np.ndarray, size: int) -> np.ndarray:
    """Gaussian pooling weights (n_sites, size*size) on a size x size grid over the 8 degrees, rows summing to 1."""
    c = (np.arange(size) + 0.5) / size * VISUAL_DEGREES - VISUAL_DEGREES / 2
    gx = np.exp(-((c[None, :] - x[:, None]) ** 2) / (2 * sigma[:, None] ** 2))
    gy = np.exp(-((-c[None, :] - y[:, None]) ** 2) / (2 * sigma[:, None] ** 2))  # row 0 = top (+y)
    w = gy[:, :, None] * gx[:, None, :]
    w = w.reshape(len(x), -1)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
