"""The search after each pass: r from the accumulator (computed in place), merged into the per-layer top-k,
the per-channel best and the units' validity (`select_pass`); after the passes, the (group, unit) pairs too
ill-conditioned for float32 sums searched again exactly in float64 (`redo_ill_conditioned`).

    r_iu = S_iu / sqrt(Q_gu - P_gu^2 / sum_s w_gs)      (precompute/match/engine.py)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from precompute.match.checkpoints import row_blocks
from precompute.match.plan import Segment
from precompute.match.results import clip_r
from precompute.match.rows import Standardized
from precompute.match.state import Best, PassState
from precompute.match.topk import PAD_INDEX, order_candidates, topk_rows
from precompute.models.base import LayerInfo

if TYPE_CHECKING:  # annotations only: torch is imported when the engine runs
    import torch

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


def select_pass(state: PassState, acc: torch.Tensor, sumsq: torch.Tensor, k: int, best: Best) -> None:
    """r for the pass's units (computed in place in the accumulator), merged into `best`: each layer's top k,
    the per-channel best and validity; ill-conditioned pairs are left out and added to `best.flagged`."""
    import torch  # heavy: loaded when the engine runs

    colsum = acc[state.n_rows :].double()  # (groups, units)
    var = sumsq - colsum * colsum / torch.as_tensor(state.wsum, device=acc.device)[:, None]
    ok = (var > 0) & (var > RELATIVE_VARIANCE_FLOOR * sumsq)
    ill = ok & (var < CONDITION_FLOOR * sumsq)
    inv_sd = torch.where(ok, 1.0 / torch.sqrt(torch.where(ok, var, 1.0)), 0.0).float()
    ok_np = ok.cpu().numpy()
    ill_np = ill.cpu().numpy()
    usable = ok_np & ~ill_np  # ill-conditioned units are searched exactly afterwards (redo_ill_conditioned)
    col = 0
    for seg in state.unit_pass.segments:
        cols = slice(col, col + seg.units)
        best.valid[seg.layer_idx][:, seg.start : seg.stop] = ok_np[:, cols]
        for g, local in zip(*np.nonzero(ill_np[:, cols]), strict=True):
            best.flagged.append((int(g), seg.layer_idx, seg.start + int(local)))
        invalid_cols = {
            g: torch.as_tensor(np.flatnonzero(~usable[g, cols]), device=acc.device) for g in range(len(ok_np))
        }
        _search_segment(state, acc[:, cols], seg, inv_sd[:, cols], invalid_cols, k, best)
        col += seg.units


def _search_segment(
    state: PassState,
    acc: torch.Tensor,
    seg: Segment,
    inv_sd: torch.Tensor,
    invalid_cols: dict[int, torch.Tensor],
    k: int,
    best: Best,
) -> None:
    """One segment's columns of the accumulator (`acc`) scaled to r block of rows by block of rows, units
    that are not usable for the block's group and invalid rows set to -inf, and searched."""
    import torch  # heavy: loaded when the engine runs

    bad_rows = np.flatnonzero(~state.row_valid)
    block = max(1, min(state.n_rows, TOPK_TEMP_BYTES // (4 * seg.units)))
    for r0, r1, g in row_blocks(state.group, block):
        r = acc[r0:r1]
        r.mul_(inv_sd[g])
        if len(invalid_cols[g]):
            r.index_fill_(1, invalid_cols[g], float("-inf"))
        bad = bad_rows[(bad_rows >= r0) & (bad_rows < r1)] - r0
        if len(bad):
            r[torch.as_tensor(bad, device=acc.device)] = float("-inf")
        vals, idx = _top_of_block(r, k)
        idx = np.where(idx >= 0, idx + seg.start, PAD_INDEX)
        best_v, best_i = best.layer_top[seg.layer_idx]
        merged_v, merged_i = order_candidates(
            np.concatenate([best_v[r0:r1], vals], axis=1), np.concatenate([best_i[r0:r1], idx], axis=1), best_v.shape[1]
        )
        best_v[r0:r1], best_i[r0:r1] = merged_v, merged_i
        if best.featuremap:
            _channel_best(r, r0, seg, state.layers[seg.layer_idx], best.featuremap[seg.layer_idx])


def _top_of_block(r: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, column) of each row's k best columns (ties: the lower column; PAD_INDEX where -inf)."""
    if k == 1:
        # torch.max returns the first maximal index: the lower flat index wins ties, as required.
        v1, i1 = r.max(dim=1)
        vals = v1.cpu().numpy()[:, None]
        idx = i1.cpu().numpy().astype(np.int64)[:, None]
        return vals, np.where(np.isfinite(vals), idx, PAD_INDEX)
    return topk_rows(r, k)


def _channel_best(
    r: torch.Tensor, r0: int, seg: Segment, layer: LayerInfo, dest: tuple[np.ndarray, np.ndarray]
) -> None:
    """The best unit of each of the segment's channels for rows r0.. (r: their r over the segment's units)."""
    hw = layer.height * layer.width
    c0, c1 = seg.start // hw, seg.stop // hw
    fm_v, fm_a = r.reshape(r.shape[0], c1 - c0, hw).max(dim=2)
    fm_v = fm_v.cpu().numpy()
    flat = (np.arange(c0, c1)[None, :] * hw + fm_a.cpu().numpy()).astype(np.int64)
    dest_v, dest_i = dest
    r1 = r0 + r.shape[0]
    dest_v[r0:r1, c0:c1] = fm_v
    dest_i[r0:r1, c0:c1] = np.where(np.isfinite(fm_v), flat, PAD_INDEX)


def redo_ill_conditioned(
    best: Best, layers: list[LayerInfo], gathered: dict[tuple[int, int], np.ndarray], rows: Standardized
) -> None:
    """Exact float64 r of the ill-conditioned (group, unit) pairs in `best.flagged` for the group's rows,
    merged into the per-layer top-k and the per-channel best (`gathered`: (layer_idx, flat) -> the unit's
    float64 activations over all stimuli)."""
    z, group, weights, row_valid = rows
    flagged = best.flagged
    units = sorted({(lay, flat) for _g, lay, flat in flagged})
    where = {u: i for i, u in enumerate(units)}
    values = np.stack([gathered[u] for u in units])
    for g in sorted({f[0] for f in flagged}):
        members = np.flatnonzero((group == g) & row_valid)
        mine = [(lay, flat) for gg, lay, flat in flagged if gg == g]
        if not len(members) or not mine:
            continue
        w = weights[g]
        a = values[[where[u] for u in mine]]  # (units, stimuli)
        a = a - (a @ w / w.sum())[:, None]
        sd = np.sqrt(np.maximum((a * a) @ w, 0.0))
        r = np.where(sd > 0, (z[members] @ a.T) / np.where(sd > 0, sd, 1.0), -np.inf)  # z is weighted and centred
        mine_layer = np.array([m[0] for m in mine])
        mine_flat = np.array([m[1] for m in mine], dtype=np.int64)
        for lay in np.unique(mine_layer):
            cols = np.flatnonzero(mine_layer == lay)
            best_v, best_i = best.layer_top[int(lay)]
            cand_r = clip_r(r[:, cols])
            merged_v, merged_i = order_candidates(
                np.concatenate([best_v[members], cand_r], axis=1),
                np.concatenate([best_i[members], np.broadcast_to(mine_flat[cols], (len(members), len(cols)))], axis=1),
                best_v.shape[1],
            )
            best_v[members], best_i[members] = merged_v, merged_i
            if best.featuremap:
                _channel_best_exact(best.featuremap[int(lay)], layers[int(lay)], members, cand_r, mine_flat[cols])


def _channel_best_exact(
    dest: tuple[np.ndarray, np.ndarray],
    layer: LayerInfo,
    members: np.ndarray,
    cand_r: np.ndarray,
    cand_flat: np.ndarray,
) -> None:
    """Candidates (cand_r: rows x units, cand_flat: their flat indices) replace a channel's best where better
    (ties: the lower flat index)."""
    hw = layer.height * layer.width
    fm_v, fm_i = dest
    for j, flat in enumerate(cand_flat):
        ch = int(flat // hw)
        better = (cand_r[:, j] > fm_v[members, ch]) | ((cand_r[:, j] == fm_v[members, ch]) & (flat < fm_i[members, ch]))
        better &= np.isfinite(cand_r[:, j])
        fm_v[members[better], ch] = cand_r[better, j]
        fm_i[members[better], ch] = flat
