"""The contract between models and the matching engine: an activation source.

Every model (an ONNX file run by onnxruntime, or a control such as `random-M` that is not a network)
is opened as an `ActivationSource`. The matching engine (precompute/match) only sees this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class LayerInfo:
    """One exposed layer (a row of the `layers` table)."""

    layer_idx: int
    layer: str
    channels: int
    height: int
    width: int
    op_type: str = ""
    output_name: str = ""
    #: "nchw" | "nhwc": how the model's raw output of this layer is ordered when it is 4-D; "" = the model's
    layout: str = ""

    @property
    def units(self) -> int:
        return self.channels * self.height * self.width


class ActivationSource(Protocol):
    """Activations of a model's exposed layers for batches of stimuli.

    `activations` returns, for the requested layers (all when `layer_indices` is None), one float32
    array per layer of shape (batch, channels, height, width) in NCHW order (channels-last models
    are transposed by the source), so unit (c, y, x) has flat index c*H*W + y*W + x. Images are
    the dataset's stored 8-bit images, decoded (grayscale (n, H, W) or RGB (n, H, W, 3)); the source
    resizes and normalises them as DESIGN.md's Input contract says. `stimulus_ids` lets sources that
    are functions of the stimulus (the `random-M` control) be deterministic per stimulus.

    A source may also offer `activations_into(images, stimulus_ids, layer_indices, out)`: the same
    outputs, with layer i written into out[i] where one is given (a C-ordered float32 array of batch x
    units: the matching engine's stage rows, the gather pass's reused batch). The engine and the gather
    pass use it when present (OnnxSource: onnxruntime's I/O binding; RandomSource) and otherwise copy
    what `activations` returns.
    """

    model: str
    layers: list[LayerInfo]

    def activations(
        self,
        images: list[np.ndarray],
        stimulus_ids: list[str],
        layer_indices: list[int] | None = None,
    ) -> list[np.ndarray]: ...

    def close(self) -> None: ...
