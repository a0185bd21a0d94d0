"""Control models, so every analysis runs on them as on any network (DESIGN.md, Controls).

- `pixels` / `pixels-<size>`: one layer `pixels`, each pixel of the model-sized grayscale input (values in
  [0, 1]) is a unit: 1 x S x S units (S = 224 unless named otherwise).
- `random-M`: normally distributed activations with M's layer names and shapes, a deterministic function
  of (seed, stimulus_id, layer), so any subset or order of stimuli gets the same values.
- `untrained-M`: M's architecture with a seeded random init, exported like any zoo model (precompute.models.add).

How `random-M` is drawn fast. Drawing 6.74 M normals per stimulus with numpy's Philox costs ~70 ms
(measured here), 6x Lite0's inference. Instead two pools of standard normals are drawn once per source
with a counter-based generator (numpy Philox keyed by the seed), and a stimulus's values for a layer are
the sum of a cyclic window of each pool, at two offsets taken from a SHA-256 of (seed, stimulus_id,
layer), scaled by 1/sqrt(2): still exactly normal, fixed per stimulus, and only memory-bound (a few ms
per stimulus for Lite0). Within a stimulus every unit gets distinct pool entries; two stimuli share a
whole layer only if both offsets collide (probability ~ n^2 / 2^45 per layer for n stimuli).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from precompute.models.base import LayerInfo
from precompute.models.preprocess import to_model_input

log = logging.getLogger(__name__)

PIXELS_DEFAULT_SIZE = 224
_POOL_MIN = 1 << 22
_PIXELS_NAME = re.compile(r"^pixels(?:-(\d+))?$")


def pixels_size(name: str) -> int | None:
    """The input size a `pixels` / `pixels-<size>` name asks for, or None when the name is not of that form."""
    m = _PIXELS_NAME.match(name)
    if not m:
        return None
    return int(m.group(1)) if m.group(1) else PIXELS_DEFAULT_SIZE


def pixels_layers(size: int) -> list[LayerInfo]:
    return [LayerInfo(0, "pixels", 1, size, size, "Input", "")]


class PixelsSource:
    """The grayscale input itself: one layer `pixels` of shape (1, S, S), values in [0, 1]."""

    def __init__(self, model: str, size: int):
        self.model = model
        self.size = size
        self.layers = pixels_layers(size)

    def activations(self, images, stimulus_ids, layer_indices=None) -> list[np.ndarray]:
        _check_indices(layer_indices, len(self.layers))
        idx = [0] if layer_indices is None else list(layer_indices)
        x = to_model_input(images, self.size, 1, [0.0], [1.0])
        return [x for _ in idx]

    def close(self) -> None:
        pass


class RandomSource:
    """`random-M`: N(0, 1) activations with M's layers, a deterministic function of (seed, stimulus_id, layer)."""

    def __init__(self, model: str, layers: list[LayerInfo], seed: int = 0, threads: int | None = None):
        self.model = model
        self.threads = threads or os.cpu_count() or 1
        self.layers = list(layers)
        self.seed = int(seed)
        largest = max((la.units for la in self.layers), default=1)
        size = max(_POOL_MIN, 1 << int(np.ceil(np.log2(2 * largest))))
        # Two pools of different lengths (coprime: odd vs power of two), pre-scaled so their sum is N(0, 1).
        self._pools = [
            _normal_pool(self.seed, 1, size),
            _normal_pool(self.seed, 2, size - 1),
        ]

    def activations(self, images, stimulus_ids, layer_indices=None) -> list[np.ndarray]:
        return self.activations_into(images, stimulus_ids, layer_indices)

    def activations_into(self, images, stimulus_ids, layer_indices=None, out=None) -> list[np.ndarray]:
        """`activations`, with layer i written into out[i] where given (float32, C-ordered, batch x units)."""
        _check_indices(layer_indices, len(self.layers))
        idx = list(range(len(self.layers)) if layer_indices is None else layer_indices)
        n = len(stimulus_ids)
        dests = list(out) if out is not None else [None] * len(idx)
        out = []
        for i, dest in zip(idx, dests, strict=True):
            shape = (n, self.layers[i].channels, self.layers[i].height, self.layers[i].width)
            out.append(np.empty(shape, dtype=np.float32) if dest is None else _as_output(dest, shape))

        def fill(b: int) -> None:
            for arr, i in zip(out, idx, strict=True):
                o1, o2 = self.offsets(stimulus_ids[b], self.layers[i].layer)
                _window_sum(self._pools[0], o1, self._pools[1], o2, arr[b].reshape(-1))

        # Memory-bound numpy kernels release the GIL: one thread per core roughly halves the time.
        if n > 1 and self.threads > 1:
            with ThreadPoolExecutor(max_workers=min(self.threads, n)) as pool:
                list(pool.map(fill, range(n)))
        else:
            for b in range(n):
                fill(b)
        return out

    def offsets(self, stimulus_id: str, layer: str) -> tuple[int, int]:
        """The two pool offsets of (stimulus, layer): a SHA-256 of the seed, the stimulus id and the layer."""
        digest = hashlib.sha256(f"{self.seed}\x00{stimulus_id}\x00{layer}".encode()).digest()
        a = int.from_bytes(digest[:8], "little") % self._pools[0].size
        b = int.from_bytes(digest[8:16], "little") % self._pools[1].size
        return a, b

    def close(self) -> None:
        self._pools = []


def _normal_pool(seed: int, stream: int, size: int) -> np.ndarray:
    """`size` standard normals / sqrt(2) from Philox keyed by (seed, stream): the same on every machine."""
    rng = np.random.Generator(np.random.Philox(key=[seed & (2**64 - 1), stream]))
    pool = rng.standard_normal(size, dtype=np.float32)
    pool *= np.float32(1.0 / np.sqrt(2.0))
    return pool


def _window_sum(p1: np.ndarray, o1: int, p2: np.ndarray, o2: int, out: np.ndarray) -> None:
    """out[k] = p1[(o1 + k) % len(p1)] + p2[(o2 + k) % len(p2)], in one pass of contiguous slices."""
    n, done = out.size, 0
    while done < n:
        take = min(n - done, p1.size - o1, p2.size - o2)
        np.add(p1[o1 : o1 + take], p2[o2 : o2 + take], out=out[done : done + take])
        done += take
        o1 = (o1 + take) % p1.size
        o2 = (o2 + take) % p2.size


def _check_indices(layer_indices, n_layers: int) -> None:
    if layer_indices is None:
        return
    bad = [i for i in layer_indices if not 0 <= int(i) < n_layers]
    if bad:
        raise IndexError(f"layer indices {bad} out of range (the model has {n_layers} layers)")


def _as_output(dest: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`dest` (float32, C-ordered, as many values as `shape`) viewed with `shape`."""
    if dest.dtype != np.float32 or not dest.flags.c_contiguous or dest.size != int(np.prod(shape)):
        raise ValueError(
            f"an output array must be C-ordered float32 with {int(np.prod(shape))} values; "
            f"got {dest.dtype}, shape {dest.shape}"
        )
    return dest.reshape(shape)
