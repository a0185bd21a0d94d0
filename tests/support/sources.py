"""A synthetic ActivationSource: a numpy "network" with any layer shapes, for the tests (tests/support).

Each layer's activations are a ReLU of a random projection of a few pooled image features, so units
are correlated with the images (and with each other) like a network's. Chosen units can be made dead
(always 0), constant (a positive bias) or exact copies of another unit (ties), which the engine must
handle. It is not a model of anything; it exercises the engine where no real model is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from precompute.models.base import LayerInfo

#: Pooled features per image: the images are averaged down to FEATURE_SIDE x FEATURE_SIDE.
FEATURE_SIDE = 4


@dataclass(frozen=True)
class UnitEdits:
    """Units (global index over all layers) to make dead, constant or copies (dst <- src)."""

    dead: tuple[int, ...] = ()
    constant: tuple[int, ...] = ()
    copies: tuple[tuple[int, int], ...] = ()


class SyntheticSource:
    """ActivationSource over layer shapes `(C, H, W)` or `(C,)` (a 2-D output: y = x = 0)."""

    def __init__(
        self, shapes: list[tuple[int, ...]], *, seed: int = 0, edits: UnitEdits | None = None, model: str = "synthetic"
    ):
        self.model = model
        self.layers = []
        for i, shape in enumerate(shapes):
            c, h, w = ((*tuple(shape), 1, 1))[:3]
            self.layers.append(LayerInfo(i, f"layer{i}", c, h, w, op_type="Relu", output_name=f"layer{i}"))
        self.offsets = np.concatenate([[0], np.cumsum([la.units for la in self.layers])]).astype(np.int64)
        n_feat = FEATURE_SIDE * FEATURE_SIDE + 1
        rng = np.random.default_rng(seed)
        self._proj = []
        for layer in self.layers:
            proj = rng.standard_normal((n_feat, layer.units), dtype=np.float32)
            proj[-1] = rng.standard_normal(layer.units, dtype=np.float32) * 0.5  # bias
            self._proj.append(proj)
        edits = edits or UnitEdits()
        for unit in edits.dead:
            layer, flat = self._locate(unit)
            self._proj[layer][:, flat] = 0.0
            self._proj[layer][-1, flat] = -1.0
        for unit in edits.constant:
            layer, flat = self._locate(unit)
            self._proj[layer][:, flat] = 0.0
            self._proj[layer][-1, flat] = 3.25
        for dst, src in edits.copies:
            ld, fd = self._locate(dst)
            ls, fs = self._locate(src)
            self._proj[ld][:, fd] = self._proj[ls][:, fs]
        self.calls = 0

    def _locate(self, unit: int) -> tuple[int, int]:
        layer = int(np.searchsorted(self.offsets, unit, side="right") - 1)
        return layer, int(unit - self.offsets[layer])

    @staticmethod
    def features(images: list[np.ndarray]) -> np.ndarray:
        """(n, FEATURE_SIDE**2 + 1): block means of each grayscale image, then a 1 for the bias."""
        out = np.ones((len(images), FEATURE_SIDE * FEATURE_SIDE + 1), dtype=np.float32)
        for i, img in enumerate(images):
            img = np.asarray(img, dtype=np.float32)
            if img.ndim == 3:
                img = img.mean(axis=2)
            h, w = img.shape
            bh, bw = h // FEATURE_SIDE, w // FEATURE_SIDE
            blocks = img[: bh * FEATURE_SIDE, : bw * FEATURE_SIDE].reshape(FEATURE_SIDE, bh, FEATURE_SIDE, bw)
            out[i, :-1] = (blocks.mean(axis=(1, 3)).reshape(-1) - 128.0) / 64.0
        return out

    def activations(
        self, images: list[np.ndarray], stimulus_ids: list[str], layer_indices: list[int] | None = None
    ) -> list[np.ndarray]:
        self.calls += 1
        feats = self.features(images)
        wanted = range(len(self.layers)) if layer_indices is None else layer_indices
        outs = []
        for i in wanted:
            layer = self.layers[i]
            act = np.maximum(feats @ self._proj[i], 0.0)
            shape = (
                (len(images), layer.channels)
                if layer.height == layer.width == 1 and i % 2
                else (len(images), layer.channels, layer.height, layer.width)
            )
            outs.append(act.reshape(shape))
        return outs

    def close(self) -> None:
        self._proj = []
