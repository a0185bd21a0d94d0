"""Running a model over a feed's stimuli: one batch of outputs into given arrays (`infer_into`, the engine's
stage), and chosen units over every stimulus (`gather_activations`: the gather pass, the engine's exact redo)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from precompute.core.feeds import ImageFeed, prefetch_images
from precompute.models.base import ActivationSource


def infer_into(source, images, ids, wanted, dests, layers) -> tuple[list[np.ndarray], float]:
    """The source's outputs for `wanted`, as (batch, units) arrays, written into `dests` where one is given
    (a source with `activations_into` writes there itself; otherwise they are copied, and the seconds the
    copies took are returned too)."""
    n = len(images)
    if hasattr(source, "activations_into"):
        outs = source.activations_into(images, ids, wanted, dests)
        copying = False
    else:
        outs = source.activations(images, ids, layer_indices=wanted)
        copying = True
    if len(outs) != len(wanted):
        raise RuntimeError(f"{source.model}: asked for {len(wanted)} layers, got {len(outs)} outputs")
    flat = []
    t0 = time.perf_counter()
    for lay, out, dest in zip(wanted, outs, dests, strict=True):
        out = np.asarray(out, dtype=np.float32).reshape(n, -1)
        if out.shape[1] != layers[lay].units:
            raise RuntimeError(
                f"{source.model}: layer {lay} gave {out.shape[1]} units per stimulus, expected {layers[lay].units}"
            )
        if dest is not None and not np.shares_memory(out, dest):
            dest[...] = out
            out = dest
        flat.append(out)
    return flat, (time.perf_counter() - t0 if copying else 0.0)


def gather_activations(
    source: ActivationSource,
    feed: ImageFeed,
    layer_idx: np.ndarray,
    flat: np.ndarray,
    *,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, float]:
    """(units, stimuli) float32 activations of the given units over every stimulus in idx order, and
    the seconds spent in inference. One inference pass, up to the deepest layer asked for."""
    layer_idx = np.asarray(layer_idx, dtype=np.int64)
    flat = np.asarray(flat, dtype=np.int64)
    n_stim = len(feed.stimulus_ids)
    values = np.empty((len(flat), n_stim), dtype=np.float32)
    wanted = sorted({int(x) for x in layer_idx})
    if not wanted:
        return values, 0.0
    rows_of = {lay: np.flatnonzero(layer_idx == lay) for lay in wanted}
    # A source that can write into given arrays reuses one batch of outputs throughout (no allocation per batch).
    into = hasattr(source, "activations_into")
    scratch = {lay: np.empty((batch_size, source.layers[lay].units), np.float32) for lay in wanted} if into else {}
    inference_s = 0.0
    batches = [np.arange(b0, min(n_stim, b0 + batch_size)) for b0 in range(0, n_stim, batch_size)]
    for idx, images, waited in prefetch_images(feed, batches):  # the next batch decodes meanwhile
        b0, b1 = int(idx[0]), int(idx[-1]) + 1
        t0 = time.perf_counter()
        ids = [feed.stimulus_ids[i] for i in idx]
        if into:
            outs = source.activations_into(images, ids, wanted, [scratch[lay][: b1 - b0] for lay in wanted])
        else:
            outs = source.activations(images, ids, layer_indices=wanted)
        inference_s += time.perf_counter() - t0 + waited
        for lay, out in zip(wanted, outs, strict=True):
            sel = rows_of[lay]
            values[sel, b0:b1] = np.asarray(out, dtype=np.float32).reshape(b1 - b0, -1)[:, flat[sel]].T
        if progress is not None:
            progress(b1 - b0)
    return values, inference_s
