"""Images -> model input, exactly as DESIGN.md's Input contract says.

Stored stimuli are decoded 8-bit arrays, grayscale (H, W) or RGB (H, W, 3). Each is resized only when
its size differs from the model's input, with Pillow `Image.resize((s, s), Image.BILINEAR)` on the
8-bit image, then scaled to [0, 1], replicated to 3 channels when the model wants 3 (an RGB image given
to a 1-channel model is converted to luminance by Pillow's "L" mode first), and normalised with the
model's per-channel mean and std.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def to_model_input(
    images: Sequence[np.ndarray],
    input_size: int,
    in_channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    layout: str = "nchw",
) -> np.ndarray:
    """Stack preprocessed images into a float32 batch, (n, C, S, S) or (n, S, S, C) for layout nhwc."""
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, not {in_channels}")
    mean_a = np.asarray(mean, dtype=np.float32).reshape(-1)
    std_a = np.asarray(std, dtype=np.float32).reshape(-1)
    if mean_a.size not in (1, in_channels) or std_a.size not in (1, in_channels):
        raise ValueError(f"mean/std need 1 or {in_channels} values, got {mean_a.size} and {std_a.size}")
    out = np.empty((len(images), in_channels, input_size, input_size), dtype=np.float32)
    for i, img in enumerate(images):
        out[i] = _one_image(np.asarray(img), input_size, in_channels)
    out -= mean_a.reshape(1, -1, 1, 1)
    out /= std_a.reshape(1, -1, 1, 1)
    if layout == "nhwc":
        return np.ascontiguousarray(out.transpose(0, 2, 3, 1))
    return out


def _one_image(img: np.ndarray, size: int, in_channels: int) -> np.ndarray:
    """One 8-bit image -> (C, size, size) float32 in [0, 1]."""
    if img.dtype != np.uint8:
        raise ValueError(f"images must be decoded 8-bit arrays, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"images must be grayscale (H, W) or RGB (H, W, 3), got shape {img.shape}")
    if img.ndim == 3 and in_channels == 1:
        img = np.asarray(Image.fromarray(img).convert("L"))
    if img.shape[0] != size or img.shape[1] != size:
        img = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
    x = img.astype(np.float32) / 255.0
    if x.ndim == 2:
        return np.broadcast_to(x, (in_channels, size, size))
    return x.transpose(2, 0, 1)
