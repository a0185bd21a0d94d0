"""The statistics pass's random projections (PLS): a very sparse random projection, and the tap that applies it.

`ProjectingSource` wraps a model's ActivationSource: activations pass through unchanged and, on the way, chosen
layers of every stimulus are projected to `dim` features with `sparse_projection` (Li, Hastie & Church 2006),
so the projections come from the statistics pass's own inference (streaming_pass.py), with no extra run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np


def sparse_projection(n_units: int, dim: int, seed: int):
    """A very sparse random projection (dim, n_units) as a scipy CSR float32 matrix.

    Each of the `dim` features sums m = ceil(sqrt(n_units)) units drawn at random (with replacement;
    repeats add up) with random signs, scaled by sqrt(n_units / (m * dim)): Li et al.'s very sparse
    projection (density 1/sqrt(n_units)), every feature non-empty, squared norms kept in expectation."""
    from scipy import sparse

    rng = np.random.default_rng([int(seed), int(n_units), int(dim)])
    m = max(1, int(np.ceil(np.sqrt(n_units))))
    cols = rng.integers(0, n_units, size=(dim, m))
    scale = np.float32(np.sqrt(n_units / (m * dim)))
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(dim, m)) * scale
    rows = np.repeat(np.arange(dim), m)
    mat = sparse.coo_matrix((signs.reshape(-1), (rows, cols.reshape(-1))), shape=(dim, n_units)).tocsr()
    mat.sum_duplicates()
    return mat.astype(np.float32)


class ProjectingSource:
    """An ActivationSource that passes activations through and, on the way, projects chosen layers of
    every stimulus it sees (by stimulus id) with `sparse_projection`."""

    def __init__(self, source, stimulus_ids: Sequence[str], layers: Sequence[int], dim: int, seed: int):
        self.source = source
        self.model = source.model
        self.layers = source.layers
        self._pos = {s: i for i, s in enumerate(stimulus_ids)}
        n = len(stimulus_ids)
        self._matrices = {int(li): sparse_projection(self.layers[int(li)].units, dim, seed + int(li)) for li in layers}
        self.projections = {li: np.zeros((n, dim), np.float32) for li in self._matrices}
        self._seen = {li: np.zeros(n, bool) for li in self._matrices}
        self.seconds = 0.0

    def activations(self, images, stimulus_ids, layer_indices=None):
        outs = self.source.activations(images, stimulus_ids, layer_indices=layer_indices)
        t0 = time.perf_counter()
        wanted = range(len(self.layers)) if layer_indices is None else layer_indices
        pos = None
        for li, out in zip(wanted, outs, strict=True):
            mat = self._matrices.get(int(li))
            if mat is None:
                continue
            if pos is None:
                pos = np.array([self._pos[s] for s in stimulus_ids], dtype=np.int64)
            if self._seen[int(li)][pos].all():
                continue  # a layer split over several engine passes is seen more than once
            flat = np.asarray(out, dtype=np.float32).reshape(len(stimulus_ids), -1)
            self.projections[int(li)][pos] = np.asarray(mat @ flat.T).T
            self._seen[int(li)][pos] = True
        self.seconds += time.perf_counter() - t0
        return outs

    def missing(self) -> list[int]:
        """Projected layers that did not see every stimulus (should be none after a full pass)."""
        return [li for li, seen in self._seen.items() if not seen.all()]

    def close(self) -> None:
        self.source.close()
