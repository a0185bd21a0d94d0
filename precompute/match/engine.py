"""The streaming matching engine: exact Pearson r between every row and every unit, and the top units.

The rows are a general set of response vectors over the stimuli (the sites; later permuted or
split-restricted copies of them), each with stimulus weights from one of a few groups (all ones by
default; a 0/1 mask restricts a row to a subset of stimuli; integer counts give a bootstrap resample).
For row i of group g with weights w and unit activations a over the stimuli:

    z_i  = w * (y_i - mean_w(y_i)) / ||sqrt(w) (y_i - mean_w(y_i))||    (standardised, float64 -> float32)
    S_iu = sum_s z_is (a_su - c_u)                                        (c_u: first-batch mean of the unit)
    P_gu = sum_s w_gs (a_su - c_u),   Q_gu = sum_s w_gs (a_su - c_u)^2
    r_iu = S_iu / sqrt(Q_gu - P_gu^2 / sum_s w_gs)

S and P are one float32 product, accumulated in place over staged batches of stimuli
(S^T += A^T Z^T: the transposed accumulator runs at ~90% of this machine's matmul peak, the direct
one at ~65%); Q is a per-stage sum of squares added in float64. Shifting by c_u keeps the float32 sums
exact to ~1e-6 relative (a unit's mean can be far larger than its spread). Stimuli are processed in a
seeded random order so that the first batch, which sets c_u, is a fair sample (datasets are often
sorted by category). A unit whose variance over a group is zero (dead or constant units) is never
matched for that group's rows. No layer's activations are held for all stimuli: per pass, only the
accumulator and one stage of activations for the pass's units (precompute/match/plan.py).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from precompute.match.plan import (
    DEFAULT_RESERVE_BYTES,
    MAX_STAGE,
    MIN_STAGE,
    Plan,
    default_memory_budget,
    plan_passes,
)
from precompute.match.topk import PAD_INDEX, order_candidates, topk_rows
from precompute.models.base import ActivationSource, LayerInfo

log = logging.getLogger(__name__)

#: A unit whose variance is below this fraction of its (shifted) sum of squares is at float32's
#: resolution of the sums: it is treated as zero variance (constant units give exactly zero).
RELATIVE_VARIANCE_FLOOR = 1e-9
#: Bound on the temporaries of the top-k phase (rows x units of one segment, converted to r).
TOPK_TEMP_BYTES = 128 << 20
#: Units per chunk when sums of squares are computed by a product (weighted groups, GPU).
SQUARE_CHUNK = 1 << 16


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


@dataclass
class MatchResult:
    """What the engine found. Unit indices: `flat` within a layer, `index` global (offsets[l] + flat).

    top_r, top_index        (rows, top_k): best units over the whole model (-inf / -1 padded)
    layer_top[l]            (r, flat), each (rows, layer_top_k): best units within layer l
    featuremap[l]           (r, flat), each (rows, channels): best unit of every channel of layer l
    valid[l]                (groups, units of l): the unit has non-zero variance over the group
    """

    layers: list[LayerInfo]
    offsets: np.ndarray
    group: np.ndarray
    row_valid: np.ndarray
    top_r: np.ndarray
    top_index: np.ndarray
    layer_top: dict[int, tuple[np.ndarray, np.ndarray]]
    featuremap: dict[int, tuple[np.ndarray, np.ndarray]]
    valid: dict[int, np.ndarray]
    plan: Plan
    timings: dict[str, float] = field(default_factory=dict)

    def locate(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global unit indices -> (layer_idx, flat)."""
        index = np.asarray(index, dtype=np.int64)
        layer = np.searchsorted(self.offsets, index, side="right") - 1
        return layer, index - self.offsets[layer]


def unit_coords(layer: LayerInfo, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices of one layer -> (channel, y, x)."""
    flat = np.asarray(flat, dtype=np.int64)
    hw = layer.height * layer.width
    return flat // hw, (flat % hw) // layer.width, flat % layer.width


def resolve_device(device: str | None) -> str:
    import torch

    if device is not None:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _clip_r(values: np.ndarray) -> np.ndarray:
    """Rounding can put |r| a hair above 1; padding (-inf) stays."""
    return np.where(np.isfinite(values), np.clip(values, -1.0, 1.0), values).astype(np.float32)


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
    source: ActivationSource, feed: ImageFeed, rows: RowSet, config: EngineConfig | None = None
) -> MatchResult:
    """Correlate every row with every unit of `source` over the feed's stimuli; exact top-k per row."""
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

    order = np.random.default_rng(config.seed).permutation(n_stim)
    # Rows then one column-sum row per group, stimuli in processing order: the product's right factor.
    zext = torch.from_numpy(np.concatenate([z, weights], axis=0)[:, order].astype(np.float32)).to(device)
    wsum = weights.sum(axis=1)
    uniform = bool(np.all(weights == 1.0))
    w_ordered = torch.from_numpy(weights[:, order].astype(np.float32)).to(device)

    offsets = np.concatenate([[0], np.cumsum([la.units for la in layers])]).astype(np.int64)
    layer_top = {la.layer_idx: (np.full((n_rows, min(k_keep, la.units)), -np.inf, np.float32),
                                np.full((n_rows, min(k_keep, la.units)), PAD_INDEX, np.int64)) for la in layers}
    featuremap = {}
    if config.featuremaps:
        featuremap = {la.layer_idx: (np.full((n_rows, la.channels), -np.inf, np.float32),
                                     np.full((n_rows, la.channels), PAD_INDEX, np.int64)) for la in layers}
    valid = {la.layer_idx: np.zeros((n_groups, la.units), bool) for la in layers}
    timings = {"inference_s": 0.0, "product_s": 0.0, "topk_s": 0.0}
    progress = _Progress(config.progress, n_stim * len(plan.passes))
    try:
        for p, unit_pass in enumerate(plan.passes):
            postfix = f"pass {p + 1}/{len(plan.passes)}" if len(plan.passes) > 1 else None
            acc, sumsq = _accumulate_pass(
                source, feed, unit_pass, layers, order, zext, w_ordered, uniform, plan, device, timings,
                lambda n, pf=postfix: progress.update(n, pf),
            )
            t0 = time.perf_counter()
            _select_pass(acc, sumsq, wsum, unit_pass, layers, group, row_valid, k_keep, device,
                         layer_top, featuremap, valid, n_rows)
            timings["topk_s"] += time.perf_counter() - t0
            del acc, sumsq
    finally:
        progress.close()

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
        top_r=_clip_r(top_r), top_index=top_index,
        layer_top={k: (_clip_r(v[:, :k_layer]), i[:, :k_layer]) for k, (v, i) in layer_top.items()},
        featuremap={k: (_clip_r(v), i) for k, (v, i) in featuremap.items()},
        valid=valid, plan=plan, timings=timings,
    )


def _accumulate_pass(source, feed, unit_pass, layers, order, zext, w_ordered, uniform, plan, device, timings,
                     progress):
    """One inference pass over all stimuli for the pass's units: the accumulator S^T (units, rows +
    groups) and the sums of squares (groups, units)."""
    import torch

    cuda = device.startswith("cuda")
    n_units = unit_pass.units
    n_cols = zext.shape[0]
    n_groups = w_ordered.shape[0]
    n_stim = len(order)
    stage = plan.stage
    acc = torch.zeros((n_units, n_cols), dtype=torch.float32, device=device)
    staging = torch.empty((stage, n_units), dtype=torch.float32, pin_memory=cuda)
    staging_np = staging.numpy()
    sumsq = torch.zeros((n_groups, n_units), dtype=torch.float64, device=device)
    sumsq_np = sumsq.numpy() if not cuda else None
    shift = np.zeros(n_units, dtype=np.float32)
    placed = []
    col = 0
    for seg in unit_pass.segments:
        placed.append((seg, col))
        col += seg.units
    wanted = unit_pass.layer_indices
    first = True
    for s0 in range(0, n_stim, stage):
        s1 = min(n_stim, s0 + stage)
        for b0 in range(s0, s1, plan.batch_size):
            b1 = min(s1, b0 + plan.batch_size)
            idx = order[b0:b1]
            images = feed.load(idx)
            ids = [feed.stimulus_ids[int(i)] for i in idx]
            t0 = time.perf_counter()
            outs = source.activations(images, ids, layer_indices=wanted)
            timings["inference_s"] += time.perf_counter() - t0
            if len(outs) != len(wanted):
                raise RuntimeError(f"{source.model}: asked for {len(wanted)} layers, got {len(outs)} outputs")
            by_layer = dict(zip(wanted, outs, strict=True))
            for seg, c in placed:
                out = np.asarray(by_layer[seg.layer_idx], dtype=np.float32).reshape(b1 - b0, -1)
                if out.shape[1] != layers[seg.layer_idx].units:
                    raise RuntimeError(
                        f"{source.model}: layer {seg.layer_idx} gave {out.shape[1]} units per stimulus, "
                        f"expected {layers[seg.layer_idx].units}")
                part = out[:, seg.start:seg.stop]
                if first:
                    # Exact for constant units: the float64 mean of equal float32 values is that value.
                    shift[c:c + seg.units] = part.mean(axis=0, dtype=np.float64).astype(np.float32)
                np.subtract(part, shift[c:c + seg.units], out=staging_np[b0 - s0:b1 - s0, c:c + seg.units])
            first = False
            progress(b1 - b0)
        t0 = time.perf_counter()
        k = s1 - s0
        a = staging[:k]
        if cuda:
            a = a.to(device, non_blocking=True)
        acc.addmm_(a.t(), zext[:, s0:s1].t())
        if uniform and not cuda:
            sq = np.einsum("ij,ij->j", staging_np[:k], staging_np[:k])
            sumsq_np += sq[None, :]
        else:
            w = w_ordered[:, s0:s1]
            for j in range(0, n_units, SQUARE_CHUNK):
                chunk = a[:, j:j + SQUARE_CHUNK]
                sumsq[:, j:j + SQUARE_CHUNK] += (w @ (chunk * chunk)).double()
        if cuda:
            torch.cuda.synchronize()
        timings["product_s"] += time.perf_counter() - t0
    return acc, sumsq


def _select_pass(acc, sumsq, wsum, unit_pass, layers, group, row_valid, k_layer, device,
                 layer_top, featuremap, valid, n_rows):
    """r for the pass's units, merged into the per-layer top-k, per-channel best and validity."""
    import torch

    n_groups = sumsq.shape[0]
    colsum = acc[:, n_rows:].t().double()  # (groups, units)
    var = sumsq - colsum * colsum / torch.as_tensor(wsum, device=acc.device)[:, None]
    ok = (var > 0) & (var > RELATIVE_VARIANCE_FLOOR * sumsq)
    inv_sd = torch.where(ok, 1.0 / torch.sqrt(torch.where(ok, var, 1.0)), 0.0).float()
    group_t = torch.as_tensor(group, device=acc.device)
    bad_rows = torch.as_tensor(~row_valid, device=acc.device)
    col = 0
    for seg in unit_pass.segments:
        layer = layers[seg.layer_idx]
        u = seg.units
        seg_ok = ok[:, col:col + u]
        valid[seg.layer_idx][:, seg.start:seg.stop] = seg_ok.cpu().numpy()
        block = max(1, min(n_rows, TOPK_TEMP_BYTES // (4 * u)))
        hw = layer.height * layer.width
        c0, c1 = seg.start // hw, seg.stop // hw
        for r0 in range(0, n_rows, block):
            r1 = min(n_rows, r0 + block)
            r = acc[col:col + u, r0:r1].t().contiguous()
            g = group_t[r0:r1] if n_groups > 1 else torch.zeros(r1 - r0, dtype=torch.long, device=acc.device)
            r.mul_(inv_sd[g, col:col + u] if n_groups > 1 else inv_sd[0, col:col + u])
            invalid = ~seg_ok[g] if n_groups > 1 else ~seg_ok[0].expand(r1 - r0, u)
            r.masked_fill_(invalid | bad_rows[r0:r1, None], float("-inf"))
            vals, idx = topk_rows(r, k_layer)
            idx = np.where(idx >= 0, idx + seg.start, PAD_INDEX)
            best_v, best_i = layer_top[seg.layer_idx]
            merged_v, merged_i = order_candidates(
                np.concatenate([best_v[r0:r1], vals], axis=1), np.concatenate([best_i[r0:r1], idx], axis=1),
                best_v.shape[1])
            best_v[r0:r1], best_i[r0:r1] = merged_v, merged_i
            if featuremap:
                fm_v, fm_a = r.view(r1 - r0, c1 - c0, hw).max(dim=2)
                fm_v = fm_v.cpu().numpy()
                flat = (np.arange(c0, c1)[None, :] * hw + fm_a.cpu().numpy()).astype(np.int64)
                dest_v, dest_i = featuremap[seg.layer_idx]
                dest_v[r0:r1, c0:c1] = fm_v
                dest_i[r0:r1, c0:c1] = np.where(np.isfinite(fm_v), flat, PAD_INDEX)
        col += u
