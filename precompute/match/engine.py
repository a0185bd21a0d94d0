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
multiplies only the rows of the groups that weigh its stimuli. No layer's activations are held for all
stimuli: per pass, only the accumulator and one stage of activations for the pass's units.

This module is the driver (`match_units`): it plans the passes (plan.py), schedules the stimuli
(schedule.py), builds one PassState per pass (state.py), accumulates (accumulate.py), searches (search.py,
checkpoints.py for the training sets) and redoes the ill-conditioned pairs exactly.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from backend.config import get_settings
from precompute.core.feeds import ImageFeed
from precompute.match.accumulate import accumulate_pass
from precompute.match.checkpoints import Checkpoints, SetSums, SetTops, redo_flagged, search_set, set_sums
from precompute.match.inference import gather_activations
from precompute.match.plan import (
    DEFAULT_RESERVE_BYTES,
    MAX_STAGE,
    MIN_STAGE,
    Pass,
    Plan,
    default_memory_budget,
    plan_passes,
)
from precompute.match.results import MatchResult, clip_r
from precompute.match.rows import RowSet, Standardized
from precompute.match.schedule import Schedule, schedule
from precompute.match.search import redo_ill_conditioned, select_pass
from precompute.match.state import Best, PassState
from precompute.match.topk import PAD_INDEX, order_candidates
from precompute.models.base import ActivationSource, LayerInfo

log = logging.getLogger(__name__)

#: K of the whole-model and within-layer top-K (matches, layer_matches) unless a run says otherwise
DEFAULT_TOP_K = 100


@dataclass(frozen=True)
class EngineConfig:
    """How to run the engine. memory_bytes None = plan.DEFAULT_RAM_FRACTION of total RAM."""

    top_k: int = DEFAULT_TOP_K
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
    import torch  # heavy: loaded when the engine runs

    if device is not None:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


class _Progress:
    """A tqdm bar on stderr (stimuli/s and ETA) or nothing."""

    def __init__(self, desc: str | None, total: int):
        self.bar = None
        if desc:
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
    source: ActivationSource,
    feed: ImageFeed,
    rows: RowSet,
    config: EngineConfig | None = None,
    checkpoints: Checkpoints | None = None,
) -> MatchResult:
    """Correlate every row with every unit of `source` over the feed's stimuli; exact top-k per row.

    `checkpoints`: nested training sets (precompute/match/checkpoints.py) whose own top-k every row also
    gets, from the same pass (`MatchResult.set_r`, `set_index`)."""
    import torch  # heavy: loaded when the engine runs, not when precompute.match is imported

    config = config or EngineConfig()
    t_start = time.perf_counter()
    torch.set_num_threads(config.threads or len(os.sched_getaffinity(0)))  # every core this process may use
    device = resolve_device(config.device)
    layers = _checked_layers(source, feed, rows)
    std = rows.standardized()
    row_order = np.argsort(std.group, kind="stable")
    if (row_order != np.arange(rows.n_rows)).any():
        # Each group's rows become one block of the accumulator (a stage then skips the blocks of groups
        # that give its stimuli no weight); the answer comes back in the caller's row order.
        values = np.where(std.weights[std.group] > 0, np.asarray(rows.values, dtype=np.float64), 0.0)
        sorted_rows = RowSet(values[row_order], std.group[row_order], std.weights)
        return match_units(source, feed, sorted_rows, config, checkpoints).reordered(np.argsort(row_order))
    n_stim = len(feed.stimulus_ids)
    sets = None if checkpoints is None else _SetSearch.start(checkpoints, std, n_stim)
    # The whole-model top-k is merged from per-layer lists, so those are kept at least top_k long.
    k_layer = config.layer_top_k or config.top_k
    k_keep = max(config.top_k, k_layer)
    plan = _plan(source, layers, std, n_stim, config)

    with (
        _default_budget_lock(config.memory_bytes is None),
        threadpool_limits(config.threads or len(os.sched_getaffinity(0)), user_api="blas"),
    ):
        sched = schedule(std.weights, plan.stage, config.seed, None if sets is None else sets.level)
        offsets = np.concatenate([[0], np.cumsum([la.units for la in layers])]).astype(np.int64)
        best = Best.empty(layers, rows.n_rows, len(std.weights), k_keep, config.featuremaps)
        timings = {"inference_s": 0.0, "staging_s": 0.0, "product_s": 0.0, "topk_s": 0.0}
        if sets is not None:
            timings["checkpoint_s"] = 0.0
            sets.after = sched.after
        shared = _shared_state(source, feed, layers, plan, device, std, sched, timings)
        _run_passes(
            shared, plan, best, k_keep, sets, offsets, _Progress(config.progress, len(sched.order) * len(plan.passes))
        )
        _redo_flagged(shared, best, sets, std, offsets)

        t0 = time.perf_counter()
        top_r, top_index = _whole_model_top(best, layers, offsets, config.top_k)
        timings["topk_s"] += time.perf_counter() - t0
        timings["total_s"] = time.perf_counter() - t_start
        return MatchResult(
            layers=layers,
            offsets=offsets,
            group=std.group,
            row_valid=std.row_valid,
            top_r=clip_r(top_r),
            top_index=top_index,
            layer_top={k: (clip_r(v[:, :k_layer]), i[:, :k_layer]) for k, (v, i) in best.layer_top.items()},
            featuremap={k: (clip_r(v), i) for k, (v, i) in best.featuremap.items()},
            valid=best.valid,
            plan=plan,
            timings=timings,
            set_r=None if sets is None else clip_r(sets.tops.r),
            set_index=None if sets is None else sets.tops.index,
        )


def _checked_layers(source: ActivationSource, feed: ImageFeed, rows: RowSet) -> list[LayerInfo]:
    """The source's layers, checked to be numbered 0..n-1, and the rows checked against the feed."""
    layers = list(source.layers)
    for pos, layer in enumerate(layers):
        if layer.layer_idx != pos:
            raise ValueError(f"layers must be numbered 0..n-1 in order; got layer_idx {layer.layer_idx} at {pos}")
    n_stim = len(feed.stimulus_ids)
    if rows.n_stimuli != n_stim:
        raise ValueError(f"rows have {rows.n_stimuli} stimuli but the feed has {n_stim}")
    return layers


def _plan(
    source: ActivationSource, layers: list[LayerInfo], std: Standardized, n_stim: int, config: EngineConfig
) -> Plan:
    """The passes over the units that fit the memory budget (precompute/match/plan.py), logged."""
    n_rows, n_groups = len(std.group), len(std.weights)
    budget = config.memory_bytes or default_memory_budget()
    plan = plan_passes(
        layers,
        n_rows,
        n_stim,
        budget,
        n_groups=n_groups,
        batch_size=config.batch_size,
        reserve_bytes=config.reserve_bytes,
        max_stage=config.max_stage,
        min_stage=config.min_stage,
    )
    log.info(
        "%s: %d rows x %d units x %d stimuli; %d pass(es), stage %d, batch %d, budget %.2f GiB (est. peak %.2f)",
        source.model,
        n_rows,
        sum(la.units for la in layers),
        n_stim,
        len(plan.passes),
        plan.stage,
        plan.batch_size,
        budget / 2**30,
        plan.estimated_peak_bytes / 2**30,
    )
    return plan


def _shared_state(
    source: ActivationSource,
    feed: ImageFeed,
    layers: list[LayerInfo],
    plan: Plan,
    device: str,
    std: Standardized,
    sched: Schedule,
    timings: dict[str, float],
) -> dict:
    """The fields of PassState that every pass shares (the product's right factor on the device, in
    processing order: the rows, then one column-sum row per group)."""
    import torch  # heavy: loaded when the engine runs

    z, group, weights, row_valid = std
    order = sched.order
    zext = np.ascontiguousarray(np.concatenate([z, weights], axis=0)[:, order], np.float32)
    return dict(
        source=source,
        feed=feed,
        layers=layers,
        plan=plan,
        device=device,
        order=order,
        windows=sched.windows,
        group=group,
        group_start=np.searchsorted(group, np.arange(len(weights) + 1)),
        row_valid=row_valid,
        wsum=weights.sum(axis=1),
        zext=torch.from_numpy(zext).to(device),
        w_ordered=torch.from_numpy(np.ascontiguousarray(weights[:, order], np.float32)).to(device),
        uniform=bool(np.all(weights[:, order] == 1.0)),
        timings=timings,
    )


def _run_passes(
    shared: dict, plan: Plan, best: Best, k: int, sets: _SetSearch | None, offsets: np.ndarray, progress: _Progress
) -> None:
    """Every pass of the plan: accumulate its units over the stimuli (searching the training sets on the way),
    then search them into `best`."""
    timings = shared["timings"]
    try:
        for p, unit_pass in enumerate(plan.passes):
            postfix = f"pass {p + 1}/{len(plan.passes)}" if len(plan.passes) > 1 else None
            state = PassState(
                **shared,
                unit_pass=unit_pass,
                progress=lambda n, pf=postfix: progress.update(n, pf),
                on_window=None if sets is None else sets.searcher(unit_pass, offsets, shared["group"], timings),
            )
            acc, sumsq = accumulate_pass(state)
            t0 = time.perf_counter()
            select_pass(state, acc, sumsq, k, best)
            timings["topk_s"] += time.perf_counter() - t0
            del acc, sumsq
    finally:
        progress.close()


def _redo_flagged(shared: dict, best: Best, sets: _SetSearch | None, std: Standardized, offsets: np.ndarray) -> None:
    """The (group, unit) pairs too ill-conditioned for float32 sums, in the final search and the training
    sets' searches, searched again exactly from one more pass over their units."""
    timings = shared["timings"]
    timings["ill_conditioned"] = float(len(best.flagged))
    set_flagged = sets.tops.flagged if sets is not None else []
    if sets is not None:
        timings["set_ill_conditioned"] = float(len(set_flagged))
    if best.flagged or set_flagged:
        t0 = time.perf_counter()
        values = _gather_flagged(shared["source"], shared["feed"], best.flagged, set_flagged, shared["plan"].batch_size)
        if best.flagged:
            redo_ill_conditioned(best, shared["layers"], values, std)
        if set_flagged:
            z, group, weights, _row_valid = std
            redo_flagged(sets.tops, values, z, group, weights, sets.checkpoints.masks, sets.sums, offsets)
        timings["ill_conditioned_s"] = time.perf_counter() - t0


def _whole_model_top(best: Best, layers: list[LayerInfo], offsets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(r, global index) of each row's k best units over the whole model, merged from the per-layer lists."""
    cand_r = np.concatenate([best.layer_top[la.layer_idx][0] for la in layers], axis=1)
    cand_i = np.concatenate(
        [
            np.where(
                best.layer_top[la.layer_idx][1] >= 0, best.layer_top[la.layer_idx][1] + offsets[la.layer_idx], PAD_INDEX
            )
            for la in layers
        ],
        axis=1,
    )
    return order_candidates(cand_r, cand_i, k)


@dataclass
class _SetSearch:
    """The training-set checkpoints of one run: each stimulus's level (Checkpoints.levels), the rows' own sums
    over each set, what the searches found, and the product steps after which each set is complete."""

    checkpoints: Checkpoints
    level: np.ndarray
    sums: SetSums
    tops: SetTops
    after: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def start(cls, checkpoints: Checkpoints, std: Standardized, n_stim: int) -> _SetSearch:
        level = checkpoints.levels(n_stim)
        sums = set_sums(std.z, std.group, std.weights, std.row_valid, checkpoints.masks)
        return cls(checkpoints, level, sums, SetTops.empty(checkpoints.n_sets, len(std.group), checkpoints.top_k))

    def searcher(self, unit_pass: Pass, offsets: np.ndarray, group: np.ndarray, timings: dict[str, float]) -> Callable:
        """PassState.on_window for one pass: after a step that completes training sets, search them."""
        n_rows = len(group)

        def on_window(w, acc, sumsq) -> None:
            t0 = time.perf_counter()
            for c in self.after.get(w, ()):
                search_set(acc, sumsq, c, self.sums, unit_pass, offsets, group, n_rows, self.tops)
            timings["checkpoint_s"] += time.perf_counter() - t0

        return on_window


def _gather_flagged(source, feed, flagged, set_flagged, batch_size) -> dict[tuple[int, int], np.ndarray]:
    """(layer_idx, flat) -> float64 activations over all stimuli of every unit some pair flagged as too
    ill-conditioned for float32 sums: one gather pass over those units (their layers only)."""
    units = sorted({(lay, flat) for _g, lay, flat in flagged} | {(lay, flat) for _c, _g, lay, flat in set_flagged})
    log.warning(
        "%s: %d (group, unit) pairs too ill-conditioned for float32 sums (%d units); computing their r "
        "exactly from one more pass over their layers",
        source.model,
        len(flagged) + len(set_flagged),
        len(units),
    )
    values, _ = gather_activations(
        source, feed, np.array([u[0] for u in units]), np.array([u[1] for u in units]), batch_size=batch_size
    )
    return {u: values[i].astype(np.float64) for i, u in enumerate(units)}


@contextmanager
def _default_budget_lock(wanted: bool):
    """Machine-wide: one engine at a time runs at the default budget (a fraction of ALL the RAM), so two
    jobs started side by side (a demo build and an `analyze` in another shell) wait for each other instead
    of being killed for memory. An explicit --memory-gb opts out."""
    if not wanted:
        yield
        return
    path = get_settings().engine_lock or Path(tempfile.gettempdir()) / "unitscope-engine.lock"
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning(
                "another matching job is using the default memory budget on this machine; waiting for it "
                "(give each job --memory-gb to run them side by side)"
            )
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
