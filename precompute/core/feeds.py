"""Image feeds: a dataset's stimuli in `stimuli.idx` order, decoded to 8-bit images on demand.

ImageFeed is what every inference pass reads (matching, gathering, the analyses that run a model); ArrayFeed
holds images already in memory, PngFeed decodes the PNG bytes stored in the database, and prefetch_images
decodes the next batch in a background thread while the caller runs the current one.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class ImageFeed(Protocol):
    """The stimuli of a dataset in `stimuli.idx` order: ids and decoded 8-bit images on demand."""

    stimulus_ids: list[str]

    def load(self, indices: np.ndarray) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class ArrayFeed:
    """An ImageFeed over images already in memory (tests, small datasets)."""

    stimulus_ids: list[str]
    images: list[np.ndarray]

    def load(self, indices: np.ndarray) -> list[np.ndarray]:
        return [self.images[int(i)] for i in indices]


class PngFeed:
    """ImageFeed decoding the stored PNG bytes on demand (8-bit grayscale (H, W) or RGB (H, W, 3))."""

    def __init__(self, stimulus_ids: list[str], pngs: list[bytes]):
        self.stimulus_ids = stimulus_ids
        self.pngs = pngs

    def load(self, indices: np.ndarray) -> list[np.ndarray]:
        from PIL import Image  # heavy: imported only when a feed decodes images

        out = []
        for i in indices:
            with Image.open(io.BytesIO(self.pngs[int(i)])) as img:
                if img.mode not in ("L", "RGB"):
                    img = img.convert("L" if img.mode in ("LA", "I", "I;16", "1") else "RGB")
                out.append(np.asarray(img))
        return out


def prefetch_images(
    feed: ImageFeed, batches: Iterable[np.ndarray]
) -> Iterator[tuple[np.ndarray, list[np.ndarray], float]]:
    """Yield (indices, images, seconds waited for them) for each index array of `batches`, in order, the next
    batch decoding in a background thread while the caller runs the current one. PIL releases the GIL while
    decoding, so the decoding fills the gaps onnxruntime's threads leave (1,280 stimuli of Lite0: 12.1 s
    decoding then inferring each batch, 10.4-11.4 s with the next batch decoded meanwhile)."""
    batches = list(batches)
    if not batches:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="unitscope-decode") as decoder:
        pending = decoder.submit(feed.load, batches[0])
        for k, idx in enumerate(batches):
            t0 = time.perf_counter()
            images = pending.result()
            waited = time.perf_counter() - t0
            if k + 1 < len(batches):
                pending = decoder.submit(feed.load, batches[k + 1])
            yield idx, images, waited
