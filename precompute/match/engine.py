"""The streaming matching engine: exact Pearson r between every row and every unit, and the top units.

The rows are a general set of response vectors over the stimuli (the sites; later permuted or
split-restricted copies of them), each with stimulus weights from one of a few groups (all ones by
default; a 0/1 mask restricts a row to a subset of stimuli; integer counts give a bootstrap resample).
For row i of group g with weights w and unit activations a over the stimuli:

    z_i  = w * (y_i - mean_w(y_i)) / ||sqrt(w) (y_i - mean_w(y_i))||    (standardised, float64 -> float32)
    S_iu = sum_s z_is (a_su - c_u)                                        (c_u: first-batch median of the unit)
    P_gu = sum_s w_gs (a_su - c_u),   Q_gu = sum_s w_gs (a_su - c_u)^2
    r_iu = S_iu / sqrt(Q_gu - P_gu^2 / sum_s w_gs)

S and P are one float32 product, accumulated in place over staged batches of stimuli (S += Z A, rows x
units: both layouts of the product run at the same speed here, and this one lets the top-k phase scale
and search every row in place, without a transposed copy of the accumulator). The source writes each
inference batch straight into the stage (one block per layer: onnxruntime's I/O binding, no copy); the
batch is then shifted in place and its squares summed block by block while each block is in cache (Q:
float32 per batch, float64 across batches), and each product step multiplies the stage blocks into their
columns of S (OpenBLAS sgemm on strided views, precompute/match/blas.py). Shifting by c_u keeps the
float32 sums exact to ~1e-6 relative (a unit's mean can be far larger than its spread). Stimuli are
processed in a seeded random order so that the first batch, which sets c_u, is a fair sample (datasets
are often sorted by category). A unit whose variance over a group is zero (dead or constant units) is
never matched for that group's rows. When the groups' weights take few patterns over the stimuli
(training sets of the statistics), stimuli are scheduled pattern by pattern and each product step
multiplies only the rows of the groups that weigh its stimuli (precompute/match/schedule.py). No layer's activations are
held for all stimuli: per pass, only the accumulator and one stage of activations for the pass's units
(precompute/match/plan.py).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from precompute.core.feeds import ImageFeed, prefetch_images
from precompute.match import blas
from precompute.match.checkpoints import Checkpoints, SetTops, redo_flagged, row_blocks, search_set, set_sums
from precompute.match.inference import gather_activations, infer_into
from precompute.match.plan import (
    DEFAULT_RESERVE_BYTES,
    MAX_STAGE,
    MIN_STAGE,
    default_memory_budget,
    plan_passes,
)
from precompute.match.results import MatchResult, clip_r
from precompute.match.schedule import runs, schedule
from precompute.match.topk import PAD_INDEX, order_candidates, topk_rows
from precompute.models.base import ActivationSource

log = logging.getLogger(__name__)

#: A unit whose variance is below this fraction of its (shifted) sum of squares is at float32's
#: resolution of the sums: it is treated as zero variance (constant units give exactly zero).
RELATIVE_VARIANCE_FLOOR = 1e-9
#: A unit whose variance over a group is below this fraction of its shifted sum of squares lost too many
#: digits to float32 cancellation for r to be good to 1e-4 (its values over the group sit far from the
#: shift, e.g. a nearly constant unit on a subset of stimuli): its r for that group's rows is computed
#: again exactly (float64, from its gathered activations) after the passes.
CONDITION_FLOOR = 2e-3
#: Bound on the temporaries of the top-k phase (rows x units of one segment, converted to r).
TOPK_TEMP_BYTES = 128 << 20
#: Units per chunk when sums of squares are computed by a product (weighted groups, GPU).
SQUARE_CHUNK = 1 << 16
#: Units per block when a staged batch is shifted and squared (16 stimuli x 16k units = 1 MiB: the block
#: is squared while it is still in the core's L2 cache).
STAGE_BLOCK = 1 << 14


@dataclass(frozen=True)
class RowSet:
    """The product's rows: response vectors (n_rows, n_stimuli) with per-group stimulus weights.

    group[i] selects the row of `weights` (n_groups, n_stimuli; >= 0) used for row i. Without
    weights every row uses every stimulus with weight 1. Entries of `values` with weight 0 are
    ignored (they may be NaN).
    """

    values: np.ndarray
    group: np.ndarray | None = None
    weights: np.ndarray | None = None

    @classmethod
    def from_matrix(cls, values: np.ndarray) -> RowSet:
        """Rows from a (rows x stimuli) matrix; NaN entries are left out of that row's correlations
        (rows with the same missing stimuli share a group)."""
        values = np.asarray(values, dtype=np.float64)
        present = np.isfinite(values)
        if present.all():
            return cls(values)
        masks, group = np.unique(present, axis=0, return_inverse=True)
        return cls(values, group.reshape(-1).astype(np.int64), masks.astype(np.float64))

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_stimuli(self) -> int:
        return int(self.values.shape[1])

    def resolved(self) -> tuple[np.ndarray, np.ndarray]:
        """(group (n_rows,), weights (n_groups, n_stimuli)) with the defaults filled in."""
        if self.weights is None:
            return np.zeros(self.n_rows, dtype=np.int64), np.ones((1, self.n_stimuli))
        weights = np.asarray(self.weights, dtype=np.float64)
        group = np.zeros(self.n_rows, np.int64) if self.group is None else np.asarray(self.group, np.int64)
        if weights.ndim != 2 or weights.shape[1] != self.n_stimuli:
            raise ValueError(f"weights must be (n_groups, {self.n_stimuli}); got {weights.shape}")
        if group.shape != (self.n_rows,) or group.min(initial=0) < 0 or group.max(initial=0) >= len(weights):
            raise ValueError("group must give every row a valid row of weights")
        if (weights < 0).any() or not np.isfinite(weights).all():
            raise ValueError("weights must be finite and >= 0")
        return group, weights

    def standardized(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(z (n_rows, n_stimuli) float64, group, weights, row_valid): z as in the module docstring;
        a row with zero weighted variance is invalid (it is never matched)."""
        group, weights = self.resolved()
        values = np.asarray(self.values, dtype=np.float64)
        w = weights[group]
        if not np.isfinite(values[w > 0]).all():
            raise ValueError("response values must be finite wherever their weight is > 0")
        y = np.where(w > 0, values, 0.0)
        wsum = w.sum(axis=1)
        mean = (w * y).sum(axis=1) / np.maximum(wsum, 1e-300)
        centred = np.where(w > 0, y - mean[:, None], 0.0)
        ss = (w * centred**2).sum(axis=1)
        scale = (w * y**2).sum(axis=1)
        row_valid = (wsum > 0) & (ss > 1e-20 * np.maximum(scale, 1e-300))
        z = np.where(row_valid[:, None], w * centred / np.sqrt(np.where(row_valid, ss, 1.0))[:, None], 0.0)
        return z, group, weights, row_valid


@dataclass(frozen=True)
class EngineConfig:
    """How to run the engine. memory_bytes None = plan.DEFAULT_RAM_FRACTION of total RAM."""

    top_k: int = 100
    layer_top_k: int | None = None
    featuremaps: bool = True
    memory_bytes: int | None = None
    reserve_bytes: int = DEFAULT_RESERVE_BYTES
    batch_size: int = 16
    max_stage: int = MAX_STAGE
    min_stage: int = MIN_STAGE
    device: str | None = None
    threads: int | None = None
    seed: int = 0
    progress: str | None = None


def resolve_device(device: str | None) -> str:
    import torch

    if device is not None:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


class _Progress:
    """A tqdm bar on stderr (stimuli/s and ETA) or nothing."""

    def __init__(self, desc: str | None, total: int):
        self.bar = None
        if desc:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="stim", file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int, postfix: str | None = None) -> None:
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def match_units(
    source: ActivationSource, feed: ImageFeed, rows: RowSet, config: EngineConfig | None = None,
    checkpoints: Checkpoints | None = None,
) -> MatchResult:
    """Correlate every row with every unit of `source` over the feed's stimuli; exact top-k per row.

    `checkpoints`: nested training sets (precompute/match/checkpoints.py) whose own top-k every row also
    gets, from the same pass (`MatchResult.set_r`, `set_index`)."""
    import torch

    config = config or EngineConfig()
    t_start = time.perf_counter()
    torch.set_num_threads(config.threads or len(os.sched_getaffinity(0)))  # every core this process may use
    device = resolve_device(config.device)

    layers = list(source.layers)
    for pos, layer in enumerate(layers):
        if layer.layer_idx != pos:
            raise ValueError(f"layers must be numbered 0..n-1 in order; got layer_idx {layer.layer_idx} at {pos}")
    n_stim = len(feed.stimulus_ids)
    if rows.n_stimuli != n_stim:
        raise ValueError(f"rows have {rows.n_stimuli} stimuli but the feed has {n_stim}")
    z, group, weights, row_valid = rows.standardized()
    n_rows, n_groups = rows.n_rows, len(weights)
    row_order = np.argsort(group, kind="stable")
    if (row_order != np.arange(n_rows)).any():
        # Each group's rows become one block of the accumulator (a stage then skips the blocks of groups
        # that give its stimuli no weight); the answer comes back in the caller's row order.
        values = np.where(weights[group] > 0, np.asarray(rows.values, dtype=np.float64), 0.0)
        sorted_result = match_units(source, feed, RowSet(values[row_order], group[row_order], weights), config,
                                    checkpoints)
        return sorted_result.reordered(np.argsort(row_order))
    level = None
    if checkpoints is not None:
        level = checkpoints.levels(n_stim)
        sums = set_sums(z, group, weights, row_valid, checkpoints.masks)
        set_tops = SetTops.empty(checkpoints.n_sets, n_rows, checkpoints.top_k)
    k_top = config.top_k
    k_layer = config.layer_top_k or config.top_k
    # The whole-model top-k is merged from per-layer lists, so those are kept at least k_top long.
    k_keep = max(k_top, k_layer)
    budget = config.memory_bytes or default_memory_budget()
    plan = plan_passes(
        layers, n_rows, n_stim, budget, n_groups=n_groups, batch_size=config.batch_size,
        reserve_bytes=config.reserve_bytes, max_stage=config.max_stage, min_stage=config.min_stage,
    )
    log.info(
        "%s: %d rows x %d units x %d stimuli; %d pass(es), stage %d, batch %d, budget %.2f GiB (est. peak %.2f)",
        source.model, n_rows, sum(la.units for la in layers), n_stim, len(plan.passes), plan.stage,
        plan.batch_size, budget / 2**30, plan.estimated_peak_bytes / 2**30,
    )

    from threadpoolctl import threadpool_limits

    with _default_budget_lock(config.memory_bytes is None), threadpool_limits(
            config.threads or len(os.sched_getaffinity(0)), user_api="blas"):
        order, windows, after = schedule(weights, plan.stage, config.seed, level)
        group_start = np.searchsorted(group, np.arange(n_groups + 1))
        # Rows then one column-sum row per group, stimuli in processing order: the product's right factor.
        zext = np.ascontiguousarray(np.concatenate([z, weights], axis=0)[:, order], np.float32)
        zext = torch.from_numpy(zext).to(device)
        wsum = weights.sum(axis=1)
        uniform = bool(np.all(weights[:, order] == 1.0))
        w_ordered = torch.from_numpy(np.ascontiguousarray(weights[:, order], np.float32)).to(device)

        offsets = np.concatenate([[0], np.cumsum([la.units for la in layers])]).astype(np.int64)
        layer_top = {la.layer_idx: (np.full((n_rows, min(k_keep, la.units)), -np.inf, np.float32),
                                    np.full((n_rows, min(k_keep, la.units)), PAD_INDEX, np.int64)) for la in layers}
        featuremap = {}
        if config.featuremaps:
            featuremap = {la.layer_idx: (np.full((n_rows, la.channels), -np.inf, np.float32),
                                         np.full((n_rows, la.channels), PAD_INDEX, np.int64)) for la in layers}
        valid = {la.layer_idx: np.zeros((n_groups, la.units), bool) for la in layers}
        flagged: list[tuple[int, int, int]] = []  # (group, layer_idx, flat) searched exactly after the passes
        timings = {"inference_s": 0.0, "staging_s": 0.0, "product_s": 0.0, "topk_s": 0.0}
        if checkpoints is not None:
            timings["checkpoint_s"] = 0.0
        progress = _Progress(config.progress, len(order) * len(plan.passes))
        try:
            for p, unit_pass in enumerate(plan.passes):
                postfix = f"pass {p + 1}/{len(plan.passes)}" if len(plan.passes) > 1 else None
                on_window = None
                if checkpoints is not None:
                    def on_window(w, acc, sumsq, unit_pass=unit_pass):
                        t0 = time.perf_counter()
                        for c in after.get(w, ()):
                            search_set(acc, sumsq, c, sums, unit_pass, offsets, group, n_rows, set_tops)
                        timings["checkpoint_s"] += time.perf_counter() - t0
                acc, sumsq = _accumulate_pass(
                    source, feed, unit_pass, layers, order, windows, group_start, zext, w_ordered, uniform, plan,
                    device, timings, lambda n, pf=postfix: progress.update(n, pf), on_window,
                )
                t0 = time.perf_counter()
                _select_pass(acc, sumsq, wsum, unit_pass, layers, group, row_valid, k_keep, device,
                             layer_top, featuremap, valid, n_rows, flagged)
                timings["topk_s"] += time.perf_counter() - t0
                del acc, sumsq
        finally:
            progress.close()
        timings["ill_conditioned"] = float(len(flagged))
        set_flagged = set_tops.flagged if checkpoints is not None else []
        if checkpoints is not None:
            timings["set_ill_conditioned"] = float(len(set_flagged))
        if flagged or set_flagged:
            t0 = time.perf_counter()
            values = _gather_flagged(source, feed, flagged, set_flagged, plan.batch_size)
            if flagged:
                _redo_ill_conditioned(source, layers, flagged, values, z, group, weights, row_valid, layer_top,
                                      featuremap)
            if set_flagged:
                redo_flagged(set_tops, values, z, group, weights, checkpoints.masks, sums, offsets)
            timings["ill_conditioned_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        cand_r = np.concatenate([layer_top[la.layer_idx][0] for la in layers], axis=1)
        cand_i = np.concatenate(
            [np.where(layer_top[la.layer_idx][1] >= 0, layer_top[la.layer_idx][1] + offsets[la.layer_idx], PAD_INDEX)
             for la in layers], axis=1)
        top_r, top_index = order_candidates(cand_r, cand_i, k_top)
        timings["topk_s"] += time.perf_counter() - t0
        timings["total_s"] = time.perf_counter() - t_start
        return MatchResult(
            layers=layers, offsets=offsets, group=group, row_valid=row_valid,
            top_r=clip_r(top_r), top_index=top_index,
            layer_top={k: (clip_r(v[:, :k_layer]), i[:, :k_layer]) for k, (v, i) in layer_top.items()},
            featuremap={k: (clip_r(v), i) for k, (v, i) in featuremap.items()},
            valid=valid, plan=plan, timings=timings,
            set_r=None if checkpoints is None else clip_r(set_tops.r),
            set_index=None if checkpoints is None else set_tops.index,
        )


def _gather_flagged(source, feed, flagged, set_flagged, batch_size) -> dict[tuple[int, int], np.ndarray]:
    """(layer_idx, flat) -> float64 activations over all stimuli of every unit some pair flagged as too
    ill-conditioned for float32 sums: one gather pass over those units (their layers only)."""
    units = sorted({(lay, flat) for _g, lay, flat in flagged} | {(lay, flat) for _c, _g, lay, flat in set_flagged})
    log.warning("%s: %d (group, unit) pairs too ill-conditioned for float32 sums (%d units); computing their r "
                "exactly from one more pass over their layers", source.model, len(flagged) + len(set_flagged),
                len(units))
    values, _ = gather_activations(source, feed, np.array([u[0] for u in units]), np.array([u[1] for u in units]),
                                   batch_size=batch_size)
    return {u: values[i].astype(np.float64) for i, u in enumerate(units)}


def _redo_ill_conditioned(source, layers, flagged, gathered, z, group, weights, row_valid, layer_top,
                          featuremap) -> None:
    """Exact float64 r of the ill-conditioned (group, unit) pairs for the group's rows, merged into the
    per-layer top-k and the per-channel best (`gathered`: the units' activations, `_gather_flagged`)."""
    units = sorted({(lay, flat) for _g, lay, flat in flagged})
    where = {u: i for i, u in enumerate(units)}
    values = np.stack([gathered[u] for u in units])
    for g in sorted({f[0] for f in flagged}):
        rows = np.flatnonzero((group == g) & row_valid)
        mine = [(lay, flat) for gg, lay, flat in flagged if gg == g]
        if not len(rows) or not mine:
            continue
        w = weights[g]
        a = values[[where[u] for u in mine]]                       # (units, stimuli)
        a = a - (a @ w / w.sum())[:, None]
        sd = np.sqrt(np.maximum((a * a) @ w, 0.0))
        r = np.where(sd > 0, (z[rows] @ a.T) / np.where(sd > 0, sd, 1.0), -np.inf)  # z is weighted and centred
        mine_layer = np.array([m[0] for m in mine])
        mine_flat = np.array([m[1] for m in mine], dtype=np.int64)
        for lay in np.unique(mine_layer):
            cols = np.flatnonzero(mine_layer == lay)
            best_v, best_i = layer_top[int(lay)]
            cand_r = clip_r(r[:, cols])
            merged_v, merged_i = order_candidates(
                np.concatenate([best_v[rows], cand_r], axis=1),
                np.concatenate([best_i[rows], np.broadcast_to(mine_flat[cols], (len(rows), len(cols)))], axis=1),
                best_v.shape[1])
            best_v[rows], best_i[rows] = merged_v, merged_i
            if featuremap:
                layer = layers[int(lay)]
                hw = layer.height * layer.width
                fm_v, fm_i = featuremap[int(lay)]
                for j, col in enumerate(cols):
                    ch = int(mine_flat[col] // hw)
                    better = (cand_r[:, j] > fm_v[rows, ch]) | (
                        (cand_r[:, j] == fm_v[rows, ch]) & (mine_flat[col] < fm_i[rows, ch]))
                    better &= np.isfinite(cand_r[:, j])
                    fm_v[rows[better], ch] = cand_r[better, j]
                    fm_i[rows[better], ch] = mine_flat[col]


@contextmanager
def _default_budget_lock(wanted: bool):
    """Machine-wide: one engine at a time runs at the default budget (a fraction of ALL the RAM), so two
    jobs started side by side (a demo build and an `analyze` in another shell) wait for each other instead
    of being killed for memory. An explicit --memory-gb opts out."""
    if not wanted:
        yield
        return
    import fcntl
    import tempfile

    path = Path(os.environ.get("UNITSCOPE_ENGINE_LOCK") or Path(tempfile.gettempdir()) / "unitscope-engine.lock")
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another matching job is using the default memory budget on this machine; waiting for it "
                        "(give each job --memory-gb to run them side by side)")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _accumulate_pass(source, feed, unit_pass, layers, order, windows, group_start, zext, w_ordered, uniform, plan,
                     device, timings, progress, on_window=None):
    """One inference pass over the scheduled stimuli for the pass's units: the accumulator S (rows + groups,
    units) and the sums of squares (groups, units). `on_window(i, acc, sumsq)`, when given, is called after
    step i with the sums over the stimuli so far (the training-set checkpoints).

    The stage is one block (stage x units) per segment, so the source writes a batch of a layer that the
    pass holds whole straight into the block's rows (`infer_into`: onnxruntime's I/O binding): nothing is
    copied and no output is allocated per batch. On the CPU each batch is then shifted in place and its
    squares summed (`_shift_batch`), and each product step multiplies every block into its columns of the
    accumulator (blas.accumulate: OpenBLAS, every core). On a GPU the blocks are shifted and squared there."""
    import torch

    cuda = device.startswith("cuda")
    n_units = unit_pass.units
    n_cols = zext.shape[0]
    n_groups = w_ordered.shape[0]
    n_rows = n_cols - n_groups
    if cuda:
        acc = torch.zeros((n_cols, n_units), dtype=torch.float32, device=device)
        flat = torch.empty(plan.stage * n_units, dtype=torch.float32, pin_memory=True)
        flat_np = flat.numpy()
    else:
        # Every page is touched here, up front and timed (allocate_s): lazily mapped memory would be faulted in
        # by the first product step and the first batches. torch's allocator, not numpy's: numpy asks for
        # transparent huge pages on arrays this large, and the kernel's compaction for them can stall the first
        # touch (6.9 GB here: 3.6-5.0 s without, 4.9-17.4 s with); the product runs as fast on 4 KiB pages.
        t0 = time.perf_counter()
        acc = torch.zeros((n_cols, n_units), dtype=torch.float32)
        flat_np = torch.empty(plan.stage * n_units, dtype=torch.float32).numpy()
        flat_np[::1024] = 0.0
        flat = None
        timings["allocate_s"] = timings.get("allocate_s", 0.0) + time.perf_counter() - t0
    blocks = []  # (segment, first accumulator column, its stage block (stage x segment units))
    col = 0
    for seg in unit_pass.segments:
        block = flat_np[plan.stage * col:plan.stage * (col + seg.units)].reshape(plan.stage, seg.units)
        blocks.append((seg, col, block))
        col += seg.units
    sumsq = torch.zeros((n_groups, n_units), dtype=torch.float64, device=device)
    patterned = all(w.groups is not None for w in windows)
    window_sq = None if uniform or not patterned else torch.zeros(n_units, dtype=torch.float64, device=device)
    shift = torch.zeros(n_units, dtype=torch.float32, device=device)
    wanted = unit_pass.layer_indices
    # Layers the pass holds whole are written in place; a layer split across passes comes back as a new
    # array and its segment is copied (the plan budgets one batch of outputs over all units for that).
    whole = {seg.layer_idx: block for seg, _c, block in blocks
             if seg.start == 0 and seg.stop == layers[seg.layer_idx].units}
    partial = [(seg, block) for seg, _c, block in blocks if seg.layer_idx not in whole]
    n_workers = torch.get_num_threads()
    workers = ThreadPoolExecutor(n_workers) if n_workers > 1 and not cuda else None
    first = True
    spans = [(b0, min(w.stop, b0 + plan.batch_size)) for w in windows for b0 in range(w.start, w.stop, plan.batch_size)]
    images_of = prefetch_images(feed, [order[b0:b1] for b0, b1 in spans])
    try:
        for w_index, window in enumerate(windows):
            s0, s1 = window.start, window.stop
            if window_sq is not None:
                window_sq.zero_()
            for b0 in range(s0, s1, plan.batch_size):
                b1 = min(s1, b0 + plan.batch_size)
                idx, images, waited = next(images_of)
                timings["decode_s"] = timings.get("decode_s", 0.0) + waited
                ids = [feed.stimulus_ids[int(i)] for i in idx]
                dests = [whole[lay][b0 - s0:b1 - s0] if lay in whole else None for lay in wanted]
                t0 = time.perf_counter()
                outs, copied = infer_into(source, images, ids, wanted, dests, layers)
                t1 = time.perf_counter()
                by_layer = dict(zip(wanted, outs, strict=True))
                for seg, block in partial:
                    block[b0 - s0:b1 - s0] = by_layer[seg.layer_idx][:, seg.start:seg.stop]
                if not cuda:
                    _shift_batch([(c, block[b0 - s0:b1 - s0]) for _seg, c, block in blocks], shift.numpy(),
                                 sumsq.numpy(), None if window_sq is None else window_sq.numpy(),
                                 None if uniform or window_sq is not None else w_ordered.numpy()[:, b0:b1],
                                 first, workers)
                t2 = time.perf_counter()
                timings["inference_s"] += t1 - t0 - copied
                timings["staging_s"] += t2 - t1 + copied
                first = False
                progress(b1 - b0)
            t0 = time.perf_counter()
            k = s1 - s0
            if window.groups is None or len(window.groups) == n_groups:
                row_blocks = [(0, n_cols)]
            else:  # only the row blocks (and column-sum rows) of the groups that weigh these stimuli
                row_blocks = []
                for g0, g1 in runs(window.groups):
                    row_blocks += [(group_start[g0], group_start[g1]), (n_rows + g0, n_rows + g1)]
            row_blocks = [(r0, r1) for r0, r1 in row_blocks if r1 > r0]
            if cuda:
                _product_gpu(acc, zext, w_ordered, sumsq, window_sq, shift, flat, blocks, plan.stage, s0, k,
                             row_blocks, uniform, min(plan.batch_size, k) if window is windows[0] else 0)
            else:
                acc_np, z_np = acc.numpy(), zext.numpy()
                for seg, c, block in blocks:
                    for r0, r1 in row_blocks:
                        blas.accumulate(acc_np[r0:r1, c:c + seg.units], z_np[r0:r1, s0:s1], block[:k])
            if window_sq is not None:
                for g in window.groups.tolist():
                    sumsq[g] += float(window.weights[g]) * window_sq
            if cuda:
                torch.cuda.synchronize()
            timings["product_s"] += time.perf_counter() - t0
            if on_window is not None:
                on_window(w_index, acc, sumsq)
    finally:
        images_of.close()
        if workers is not None:
            workers.shutdown()
    return acc, sumsq


def _shift_batch(parts, shift, sumsq, window_sq, weights, first, workers) -> None:
    """A batch just staged, on the CPU: each part (first accumulator column, batch rows of a stage block)
    shifted in place (the shift set from this batch's median when `first`) and its squares summed: into
    the sums when every weight is 1, into the window's sums for one weight pattern, else weighted by each
    group (`weights`: groups x batch). In blocks of STAGE_BLOCK units (each squared while it is in cache),
    shared out over the worker threads (numpy releases the GIL in these loops)."""
    jobs = [(part, c, j, min(part.shape[1], j + STAGE_BLOCK))
            for c, part in parts for j in range(0, part.shape[1], STAGE_BLOCK)]

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

    if workers is None:
        run(jobs)
        return
    shared = iter(jobs)  # each thread takes the next block (a list iterator is safe to share under the GIL)
    for future in [workers.submit(run, shared) for _ in range(workers._max_workers)]:
        future.result()


def _product_gpu(acc, zext, w_ordered, sumsq, window_sq, shift, flat, blocks, stage, s0, k, row_blocks, uniform,
                 median_rows) -> None:
    """One product step on the GPU: each stage block is copied to the device, shifted and squared there,
    and multiplied into its columns of the accumulator (torch addmm_)."""
    w = w_ordered[:, s0:s0 + k]
    for seg, c, _block in blocks:
        u = seg.units
        a = flat[stage * c:stage * (c + u)].view(stage, u)[:k].to(acc.device, non_blocking=True)
        cols = slice(c, c + u)
        if median_rows:
            shift[cols] = a[:median_rows].median(dim=0).values
        a -= shift[cols]
        for j in range(0, u, SQUARE_CHUNK):
            part = a[:, j:j + SQUARE_CHUNK]
            sq = part * part
            cc = slice(c + j, c + min(u, j + SQUARE_CHUNK))
            if uniform:
                sumsq[0, cc] += sq.sum(dim=0).double()
            elif window_sq is not None:
                window_sq[cc] = sq.sum(dim=0).double()
            else:
                sumsq[:, cc] += (w @ sq).double()
        for r0, r1 in row_blocks:
            acc[r0:r1, cols].addmm_(zext[r0:r1, s0:s0 + k], a)


def _select_pass(acc, sumsq, wsum, unit_pass, layers, group, row_valid, k_layer, device,
                 layer_top, featuremap, valid, n_rows, flagged):
    """r for the pass's units (computed in place in the accumulator), merged into the per-layer top-k,
    per-channel best and validity."""
    import torch

    colsum = acc[n_rows:].double()  # (groups, units)
    var = sumsq - colsum * colsum / torch.as_tensor(wsum, device=acc.device)[:, None]
    ok = (var > 0) & (var > RELATIVE_VARIANCE_FLOOR * sumsq)
    ill = ok & (var < CONDITION_FLOOR * sumsq)
    inv_sd = torch.where(ok, 1.0 / torch.sqrt(torch.where(ok, var, 1.0)), 0.0).float()
    ok_np = ok.cpu().numpy()
    ill_np = ill.cpu().numpy()
    usable = ok_np & ~ill_np  # ill-conditioned units are searched exactly afterwards (_redo_ill_conditioned)
    bad_rows = np.flatnonzero(~row_valid)
    col = 0
    for seg in unit_pass.segments:
        layer = layers[seg.layer_idx]
        u = seg.units
        valid[seg.layer_idx][:, seg.start:seg.stop] = ok_np[:, col:col + u]
        for g, local in zip(*np.nonzero(ill_np[:, col:col + u]), strict=True):
            flagged.append((int(g), seg.layer_idx, seg.start + int(local)))
        invalid_cols = {g: torch.as_tensor(np.flatnonzero(~usable[g, col:col + u]), device=acc.device)
                        for g in range(len(ok_np))}
        block = max(1, min(n_rows, TOPK_TEMP_BYTES // (4 * u)))
        hw = layer.height * layer.width
        c0, c1 = seg.start // hw, seg.stop // hw
        for r0, r1, g in row_blocks(group, block):
            r = acc[r0:r1, col:col + u]
            r.mul_(inv_sd[g, col:col + u])
            if len(invalid_cols[g]):
                r.index_fill_(1, invalid_cols[g], float("-inf"))
            bad = bad_rows[(bad_rows >= r0) & (bad_rows < r1)] - r0
            if len(bad):
                r[torch.as_tensor(bad, device=acc.device)] = float("-inf")
            if k_layer == 1:
                # torch.max returns the first maximal index: the lower flat index wins ties, as required.
                v1, i1 = r.max(dim=1)
                vals = v1.cpu().numpy()[:, None]
                idx = i1.cpu().numpy().astype(np.int64)[:, None]
                idx = np.where(np.isfinite(vals), idx, PAD_INDEX)
            else:
                vals, idx = topk_rows(r, k_layer)
            idx = np.where(idx >= 0, idx + seg.start, PAD_INDEX)
            best_v, best_i = layer_top[seg.layer_idx]
            merged_v, merged_i = order_candidates(
                np.concatenate([best_v[r0:r1], vals], axis=1), np.concatenate([best_i[r0:r1], idx], axis=1),
                best_v.shape[1])
            best_v[r0:r1], best_i[r0:r1] = merged_v, merged_i
            if featuremap:
                fm_v, fm_a = r.reshape(r1 - r0, c1 - c0, hw).max(dim=2)
                fm_v = fm_v.cpu().numpy()
                flat = (np.arange(c0, c1)[None, :] * hw + fm_a.cpu().numpy()).astype(np.int64)
                dest_v, dest_i = featuremap[seg.layer_idx]
                dest_v[r0:r1, c0:c1] = fm_v
                dest_i[r0:r1, c0:c1] = np.where(np.isfinite(fm_v), flat, PAD_INDEX)
        col += u
