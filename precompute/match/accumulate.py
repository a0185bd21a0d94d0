"""One inference pass: the accumulator S (rows + groups, units) and the sums of squares (groups, units) of a
pass's units over the scheduled stimuli (the product of precompute/match/engine.py's docstring).

The stage is one block (stage x units) per segment, so the source writes a batch of a layer that the pass
holds whole straight into the block's rows (`infer_into`: onnxruntime's I/O binding): nothing is copied and
no output is allocated per batch. On the CPU each batch is then shifted in place and its squares summed
(`_shift_batch`), and each product step multiplies every block into its columns of the accumulator
(blas.accumulate: OpenBLAS, every core). On a GPU the blocks are shifted and squared there (`_product_gpu`).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from precompute.core.feeds import prefetch_images
from precompute.match import blas
from precompute.match.inference import infer_into
from precompute.match.plan import Segment
from precompute.match.schedule import Window, runs
from precompute.match.state import PassState

if TYPE_CHECKING:  # annotations only: torch is imported when the engine runs
    import torch

#: Units per chunk when sums of squares are computed by a product (weighted groups, GPU).
SQUARE_CHUNK = 1 << 16
#: Units per block when a staged batch is shifted and squared (16 stimuli x 16k units = 1 MiB: the block
#: is squared while it is still in the core's L2 cache).
STAGE_BLOCK = 1 << 14


@dataclass
class PassBuffers:
    """One pass's working memory.

    acc (rows + groups, units) float32 and sumsq (groups, units) float64: the sums so far; window_sq (units,):
    the current step's squares when every step has one weight pattern (None otherwise); shift (units,): each
    unit's shift, set from the pass's first batch. blocks: (segment, first accumulator column, its stage
    block (stage x segment units)), views of one flat stage (`flat`: pinned host memory, GPU only). whole:
    layer -> its block, for layers the pass holds whole (written in place by the source); partial: the
    segments of layers split across passes (copied from the source's output)."""

    acc: torch.Tensor
    sumsq: torch.Tensor
    window_sq: torch.Tensor | None
    shift: torch.Tensor
    flat: torch.Tensor | None
    blocks: list[tuple[Segment, int, np.ndarray]]
    whole: dict[int, np.ndarray] = field(default_factory=dict)
    partial: list[tuple[Segment, np.ndarray]] = field(default_factory=list)
    workers: ThreadPoolExecutor | None = None  # CPU: the threads that shift and square a batch
    first_batch: bool = True  # the next batch staged is the pass's first (it sets the shift)


def accumulate_pass(state: PassState) -> tuple[torch.Tensor, torch.Tensor]:
    """(acc, sumsq) of the pass's units over every scheduled stimulus. `state.on_window(i, acc, sumsq)`, when
    given, is called after step i with the sums over the stimuli so far (the training-set checkpoints)."""
    batch = state.plan.batch_size
    spans = [(b0, min(w.stop, b0 + batch)) for w in state.windows for b0 in range(w.start, w.stop, batch)]
    images_of = prefetch_images(state.feed, [state.order[b0:b1] for b0, b1 in spans])
    buf = _allocate(state)
    try:
        for w_index, window in enumerate(state.windows):
            if buf.window_sq is not None:
                buf.window_sq.zero_()
            for b0 in range(window.start, window.stop, batch):
                b1 = min(window.stop, b0 + batch)
                _stage_batch(state, buf, window.start, b0, b1, next(images_of))
                state.progress(b1 - b0)
            _product_step(state, buf, window)
            if state.on_window is not None:
                state.on_window(w_index, buf.acc, buf.sumsq)
    finally:
        images_of.close()
        if buf.workers is not None:
            buf.workers.shutdown()
    return buf.acc, buf.sumsq


def _allocate(state: PassState) -> PassBuffers:
    """The pass's accumulator, sums and stage (a block per segment), all zero."""
    import torch  # heavy: loaded when the engine runs

    n_units = state.unit_pass.units
    n_cols = state.n_rows + state.n_groups
    stage = state.plan.stage
    if state.cuda:
        acc = torch.zeros((n_cols, n_units), dtype=torch.float32, device=state.device)
        flat = torch.empty(stage * n_units, dtype=torch.float32, pin_memory=True)
        flat_np = flat.numpy()
    else:
        # Every page is touched here, up front and timed (allocate_s): lazily mapped memory would be faulted in
        # by the first product step and the first batches. torch's allocator, not numpy's: numpy asks for
        # transparent huge pages on arrays this large, and the kernel's compaction for them can stall the first
        # touch (6.9 GB here: 3.6-5.0 s without, 4.9-17.4 s with); the product runs as fast on 4 KiB pages.
        t0 = time.perf_counter()
        acc = torch.zeros((n_cols, n_units), dtype=torch.float32)
        flat_np = torch.empty(stage * n_units, dtype=torch.float32).numpy()
        flat_np[::1024] = 0.0
        flat = None
        state.timings["allocate_s"] = state.timings.get("allocate_s", 0.0) + time.perf_counter() - t0
    blocks = []
    col = 0
    for seg in state.unit_pass.segments:
        blocks.append((seg, col, flat_np[stage * col : stage * (col + seg.units)].reshape(stage, seg.units)))
        col += seg.units
    sumsq = torch.zeros((state.n_groups, n_units), dtype=torch.float64, device=state.device)
    patterned = all(w.groups is not None for w in state.windows)
    window_sq = (
        None if state.uniform or not patterned else torch.zeros(n_units, dtype=torch.float64, device=state.device)
    )
    shift = torch.zeros(n_units, dtype=torch.float32, device=state.device)
    # Layers the pass holds whole are written in place; a layer split across passes comes back as a new
    # array and its segment is copied (the plan budgets one batch of outputs over all units for that).
    whole = {
        seg.layer_idx: block
        for seg, _c, block in blocks
        if seg.start == 0 and seg.stop == state.layers[seg.layer_idx].units
    }
    partial = [(seg, block) for seg, _c, block in blocks if seg.layer_idx not in whole]
    n_workers = torch.get_num_threads()
    workers = ThreadPoolExecutor(n_workers) if n_workers > 1 and not state.cuda else None
    return PassBuffers(acc, sumsq, window_sq, shift, flat, blocks, whole, partial, workers)


def _stage_batch(state: PassState, buf: PassBuffers, s0: int, b0: int, b1: int, fetched) -> None:
    """Stimuli order[b0:b1] of the step starting at s0 (`fetched`: prefetch_images' indices, images, wait) run
    through the source into the stage; on the CPU, shifted and squared there."""
    idx, images, waited = fetched
    timings = state.timings
    timings["decode_s"] = timings.get("decode_s", 0.0) + waited
    wanted = state.unit_pass.layer_indices
    ids = [state.feed.stimulus_ids[int(i)] for i in idx]
    dests = [buf.whole[lay][b0 - s0 : b1 - s0] if lay in buf.whole else None for lay in wanted]
    t0 = time.perf_counter()
    outs, copied = infer_into(state.source, images, ids, wanted, dests, state.layers)
    t1 = time.perf_counter()
    by_layer = dict(zip(wanted, outs, strict=True))
    for seg, block in buf.partial:
        block[b0 - s0 : b1 - s0] = by_layer[seg.layer_idx][:, seg.start : seg.stop]
    if not state.cuda:
        weights = None if state.uniform or buf.window_sq is not None else state.w_ordered.numpy()[:, b0:b1]
        _shift_batch(buf, [(c, block[b0 - s0 : b1 - s0]) for _seg, c, block in buf.blocks], weights)
    t2 = time.perf_counter()
    timings["inference_s"] += t1 - t0 - copied
    timings["staging_s"] += t2 - t1 + copied
    buf.first_batch = False


def _shift_batch(buf: PassBuffers, parts, weights) -> None:
    """A batch just staged, on the CPU: each part (first accumulator column, batch rows of a stage block)
    shifted in place (the shift set from this batch's median when it is the pass's first) and its squares
    summed: into the sums when every weight is 1, into the window's sums for one weight pattern, else
    weighted by each group (`weights`: groups x batch). In blocks of STAGE_BLOCK units (each squared while it
    is in cache), shared out over the worker threads (numpy releases the GIL in these loops)."""
    shift, sumsq, first = buf.shift.numpy(), buf.sumsq.numpy(), buf.first_batch
    window_sq = None if buf.window_sq is None else buf.window_sq.numpy()
    jobs = [
        (part, c, j, min(part.shape[1], j + STAGE_BLOCK))
        for c, part in parts
        for j in range(0, part.shape[1], STAGE_BLOCK)
    ]

    def run(chunks) -> None:
        for part, c, j0, j1 in chunks:
            a = part[:, j0:j1]
            cols = slice(c + j0, c + j1)
            if first:
                # A mostly constant unit (a silent ReLU) gets its constant: its sums are then exact zeros.
                shift[cols] = np.median(a, axis=0)
            np.subtract(a, shift[cols], out=a)
            if weights is not None:
                sumsq[:, cols] += weights @ (a * a)
            elif window_sq is not None:
                window_sq[cols] += np.einsum("ij,ij->j", a, a)
            else:
                sumsq[0, cols] += np.einsum("ij,ij->j", a, a)

    if buf.workers is None:
        run(jobs)
        return
    shared = iter(jobs)  # each thread takes the next block (a list iterator is safe to share under the GIL)
    for future in [buf.workers.submit(run, shared) for _ in range(buf.workers._max_workers)]:
        future.result()


def _product_step(state: PassState, buf: PassBuffers, window: Window) -> None:
    """The staged stimuli of `window` multiplied into the accumulator (only the row blocks of the groups that
    weigh them), and the window's squares added to the sums."""
    t0 = time.perf_counter()
    s0, s1 = window.start, window.stop
    k = s1 - s0
    row_blocks = _row_blocks(state, window)
    if state.cuda:
        _product_gpu(state, buf, s0, k, row_blocks, min(state.plan.batch_size, k) if window is state.windows[0] else 0)
    else:
        acc_np, z_np = buf.acc.numpy(), state.zext.numpy()
        for seg, c, block in buf.blocks:
            for r0, r1 in row_blocks:
                blas.accumulate(acc_np[r0:r1, c : c + seg.units], z_np[r0:r1, s0:s1], block[:k])
    if buf.window_sq is not None:
        for g in window.groups.tolist():
            buf.sumsq[g] += float(window.weights[g]) * buf.window_sq
    if state.cuda:
        import torch  # heavy: loaded when the engine runs

        torch.cuda.synchronize()
    state.timings["product_s"] += time.perf_counter() - t0


def _row_blocks(state: PassState, window: Window) -> list[tuple[int, int]]:
    """[r0, r1) accumulator rows a step multiplies: all of them, or only the row blocks (and column-sum rows)
    of the groups that weigh the window's stimuli."""
    if window.groups is None or len(window.groups) == state.n_groups:
        blocks = [(0, state.n_rows + state.n_groups)]
    else:
        blocks = []
        for g0, g1 in runs(window.groups):
            blocks += [(state.group_start[g0], state.group_start[g1]), (state.n_rows + g0, state.n_rows + g1)]
    return [(r0, r1) for r0, r1 in blocks if r1 > r0]


def _product_gpu(state: PassState, buf: PassBuffers, s0: int, k: int, row_blocks, median_rows: int) -> None:
    """One product step on the GPU: each stage block is copied to the device, shifted and squared there,
    and multiplied into its columns of the accumulator (torch addmm_). The shift is set from the first
    `median_rows` staged stimuli when that is non-zero (the pass's first step)."""
    acc, sumsq, window_sq, shift, stage = buf.acc, buf.sumsq, buf.window_sq, buf.shift, state.plan.stage
    w = state.w_ordered[:, s0 : s0 + k]
    for seg, c, _block in buf.blocks:
        u = seg.units
        a = buf.flat[stage * c : stage * (c + u)].view(stage, u)[:k].to(acc.device, non_blocking=True)
        cols = slice(c, c + u)
        if median_rows:
            shift[cols] = a[:median_rows].median(dim=0).values
        a -= shift[cols]
        for j in range(0, u, SQUARE_CHUNK):
            part = a[:, j : j + SQUARE_CHUNK]
            sq = part * part
            cc = slice(c + j, c + min(u, j + SQUARE_CHUNK))
            if state.uniform:
                sumsq[0, cc] += sq.sum(dim=0).double()
            elif window_sq is not None:
                window_sq[cc] = sq.sum(dim=0).double()
            else:
                sumsq[:, cc] += (w @ sq).double()
        for r0, r1 in row_blocks:
            acc[r0:r1, cols].addmm_(state.zext[r0:r1, s0 : s0 + k], a)
