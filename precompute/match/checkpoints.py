"""Nested training sets searched in the matching pass itself: each row's best units over growing prefixes.

A held-out score must choose a site's unit on training stimuli only (docs/metrics.md, "What each score's
selection saw"). Adding one block of rows per training set to the product would cost one more product per
set; instead the engine processes the stimuli training set by training set (folds 0, 1, ... in turn,
`schedule.schedule`) and searches its accumulator on the way. Once the stimuli of a training set T are all
in, the accumulator holds, for every row i (group g) and unit u,

    S_iu = sum_T z_is a'_su,   P_gu = sum_T w_gs a'_su,   Q_gu = sum_T w_gs a'_su^2

with z standardised over ALL of the row's stimuli and a' the shifted activations (precompute/match/engine.py).
Pearson r is unchanged by the affine map between a row's responses on T and its z on T, so with the row's
own sums over T,

    m_i = sum_T z_is,   q_i = sum_T z_is^2,   n_g = sum_T w_gs,
    r_iu(T) = (S_iu - m_i P_gu / n_g) / sqrt((q_i - m_i^2 / n_g) (Q_gu - P_gu^2 / n_g)),

which for T = all stimuli (m_i = 0, q_i = 1) is the engine's final r. A training set in the chain therefore
costs one search of the accumulator (no product, no inference), and its top-k is as exact as the final one:
units whose variance over T lost too many digits to float32 cancellation are flagged and redone in float64
from their gathered activations (`redo_flagged`), like the engine's final search. Weights must be 0/1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from precompute.match.topk import PAD_INDEX, order_candidates, topk_rows

#: Same meaning as search.RELATIVE_VARIANCE_FLOOR / CONDITION_FLOOR, for the sums over a training set.
RELATIVE_VARIANCE_FLOOR = 1e-9
CONDITION_FLOOR = 2e-3
#: Bound on one temporary of the top-k search (rows x units of one segment, float32).
TEMP_BYTES = 128 << 20
#: The top-1 search works on tiles this size (4 MiB of float32), each scaled, shifted and searched while it
#: is in cache: the accumulator is read once (Lite0, 256 rows: ~1.2 s a training set here, against ~11 s
#: for the same operations on whole 128 MiB blocks, which make five trips through memory).
TILE_ROWS = 64
TILE_UNITS = 1 << 14


@dataclass(frozen=True)
class Checkpoints:
    """Nested training sets (sets, stimuli) bool, masks[c] a subset of masks[c + 1], and how many units to keep.

    Stimuli are processed in `levels()` order: level c holds the stimuli first included by set c; level
    `n_sets` holds the stimuli in no set (they only reach the final, all-stimuli result)."""

    masks: np.ndarray
    top_k: int = 1

    @property
    def n_sets(self) -> int:
        return int(np.shape(self.masks)[0])

    def levels(self, n_stimuli: int) -> np.ndarray:
        """(stimuli,) level of each stimulus; ValueError when the masks are not nested training sets."""
        masks = np.asarray(self.masks, dtype=bool)
        if masks.ndim != 2 or masks.shape[1] != n_stimuli:
            raise ValueError(f"checkpoint masks must be (sets, {n_stimuli}); got {masks.shape}")
        if self.top_k < 1:
            raise ValueError("checkpoint top_k must be at least 1")
        if len(masks) > 1 and (masks[:-1] & ~masks[1:]).any():
            raise ValueError("checkpoint masks must be nested: every set inside the next")
        level = np.full(n_stimuli, len(masks), dtype=np.int64)
        for c in range(len(masks) - 1, -1, -1):
            level[masks[c]] = c
        return level


@dataclass(frozen=True)
class SetSums:
    """Per training set c: each row's sums of z over the set and each group's stimulus count (float64).

    m, inv_sd: (sets, rows); n: (sets, groups); row_ok (sets, rows): the row varies over the set."""

    m: np.ndarray
    inv_sd: np.ndarray
    n: np.ndarray
    row_ok: np.ndarray


def set_sums(
    z: np.ndarray, group: np.ndarray, weights: np.ndarray, row_valid: np.ndarray, masks: np.ndarray
) -> SetSums:
    """The rows' own sums over every training set (z: rows x stimuli, zero where the row has no weight)."""
    masks = np.asarray(masks, dtype=np.float64)
    if not np.isin(weights, (0.0, 1.0)).all():
        raise ValueError("training-set checkpoints need 0/1 stimulus weights")
    m = masks @ z.T  # (sets, rows)
    q = masks @ (z * z).T
    n = masks @ weights.T  # (sets, groups)
    n_row = n[:, group]
    with np.errstate(invalid="ignore", divide="ignore"):
        ss = q - m * m / np.where(n_row > 0, n_row, 1.0)
    row_ok = row_valid[None, :] & (n_row >= 2) & (ss > 1e-12 * np.maximum(q, 1e-300))
    inv_sd = np.where(row_ok, 1.0 / np.sqrt(np.where(row_ok, ss, 1.0)), 0.0)
    return SetSums(m, inv_sd, n, row_ok)


@dataclass
class SetTops:
    """What the searches found: per set, every row's top-k units (global index) and training-set r.

    flagged: (set, group, layer_idx, flat) pairs to redo exactly after the passes."""

    r: np.ndarray
    index: np.ndarray
    flagged: list[tuple[int, int, int, int]] = field(default_factory=list)

    @classmethod
    def empty(cls, n_sets: int, n_rows: int, k: int) -> SetTops:
        return cls(np.full((n_sets, n_rows, k), -np.inf, np.float32), np.full((n_sets, n_rows, k), PAD_INDEX, np.int64))

    def merge(self, c: int, rows: np.ndarray | slice, values: np.ndarray, index: np.ndarray) -> None:
        k = self.r.shape[2]
        merged_v, merged_i = order_candidates(
            np.concatenate([self.r[c, rows], values], axis=1), np.concatenate([self.index[c, rows], index], axis=1), k
        )
        self.r[c, rows], self.index[c, rows] = merged_v, merged_i


def row_blocks(group: np.ndarray, block: int) -> list[tuple[int, int, int]]:
    """(start, stop, group) for runs of rows with the same group, each at most `block` rows long."""
    out = []
    n = len(group)
    r0 = 0
    while r0 < n:
        g = int(group[r0])
        r1 = r0 + 1
        while r1 < n and r1 - r0 < block and group[r1] == g:
            r1 += 1
        out.append((r0, r1, g))
        r0 = r1
    return out


def search_set(
    acc, sumsq, c: int, sums: SetSums, unit_pass, offsets: np.ndarray, group: np.ndarray, n_rows: int, tops: SetTops
) -> None:
    """Merge the top-k over training set c of the pass's units into `tops` (the accumulator is left as it is).

    acc: (rows + groups, units) float32 torch tensor with the sums over set c (column-sum rows last);
    sumsq: (groups, units) float64 with the sums of squares over set c."""
    import torch  # heavy: loaded when the engine runs

    dev = acc.device
    n = torch.as_tensor(sums.n[c], dtype=torch.float64, device=dev)
    has = n > 0
    colsum = acc[n_rows:].double()
    mean = torch.where(has[:, None], colsum / torch.where(has, n, 1.0)[:, None], 0.0)
    var = sumsq - colsum * mean
    ok = has[:, None] & (var > 0) & (var > RELATIVE_VARIANCE_FLOOR * sumsq)
    ill = ok & (var < CONDITION_FLOOR * sumsq)
    usable = ok & ~ill
    inv_sd = torch.where(usable, 1.0 / torch.sqrt(torch.where(usable, var, 1.0)), 0.0).float()
    mean32 = mean.float()
    m32 = torch.as_tensor(sums.m[c], dtype=torch.float32, device=dev)
    ill_np = ill.cpu().numpy()
    usable_np = usable.cpu().numpy()
    k = tops.r.shape[2]
    scaled_mean = (mean32 * inv_sd) if k == 1 else None
    penalty = torch.where(usable, 0.0, float("-inf")).float() if k == 1 else None
    tile = torch.empty(TILE_ROWS * TILE_UNITS, dtype=torch.float32, device=dev) if k == 1 else None
    col = 0
    for seg in unit_pass.segments:
        u = seg.units
        for g, local in zip(*np.nonzero(ill_np[:, col : col + u]), strict=True):
            tops.flagged.append((c, int(g), seg.layer_idx, seg.start + int(local)))
        base = int(offsets[seg.layer_idx]) + seg.start
        if k == 1:
            blocks = row_blocks(group, TILE_ROWS)
        else:
            bad_cols = {
                g: torch.as_tensor(np.flatnonzero(~usable_np[g, col : col + u]), device=dev)
                for g in range(len(usable_np))
            }
            blocks = row_blocks(group, max(1, min(n_rows, TEMP_BYTES // (4 * u))))
        for r0, r1, g in blocks:
            rows_ok = sums.row_ok[c, r0:r1]
            if not rows_ok.any():
                continue
            if k == 1:
                vals, idx = _best_in_tiles(
                    acc[r0:r1, col : col + u],
                    m32[r0:r1],
                    inv_sd[g, col : col + u],
                    scaled_mean[g, col : col + u],
                    penalty[g, col : col + u],
                    tile,
                )
            else:
                t = torch.addr(acc[r0:r1, col : col + u], m32[r0:r1], mean32[g, col : col + u], alpha=-1.0)
                t.mul_(inv_sd[g, col : col + u])
                if len(bad_cols[g]):
                    t.index_fill_(1, bad_cols[g], float("-inf"))
                vals, idx = topk_rows(t, k)
                del t
            vals = (vals.astype(np.float64) * sums.inv_sd[c, r0:r1, None]).astype(np.float32)
            good = np.isfinite(vals) & (idx >= 0) & rows_ok[:, None]
            tops.merge(c, slice(r0, r1), np.where(good, vals, -np.inf), np.where(good, idx + base, PAD_INDEX))
        col += u


def _best_in_tiles(s, m, inv_sd, scaled_mean, penalty, tile) -> tuple[np.ndarray, np.ndarray]:
    """Each row's highest (s_iu - m_i mean_u) * inv_sd_u (-inf where penalty_u is) and its first column,
    tile by tile (TILE_UNITS columns at a time, each tile in cache through all of its operations): (rows, 1)
    values and local indices (-1 where a row has no finite value)."""
    import torch  # heavy: loaded when the engine runs

    rows, u = s.shape
    best_v = torch.full((rows,), float("-inf"), device=s.device)
    best_i = torch.full((rows,), -1, dtype=torch.long, device=s.device)
    for c0 in range(0, u, TILE_UNITS):
        c1 = min(u, c0 + TILE_UNITS)
        t = tile[: rows * (c1 - c0)].view(rows, c1 - c0)
        torch.mul(s[:, c0:c1], inv_sd[c0:c1], out=t)
        t.addr_(m, scaled_mean[c0:c1], alpha=-1.0)
        t.add_(penalty[c0:c1])
        v, i = t.max(dim=1)  # the first maximal column: the lower unit wins ties
        better = v > best_v  # strictly: an equal value in a later tile is a higher unit
        best_v = torch.where(better, v, best_v)
        best_i = torch.where(better, i + c0, best_i)
    return best_v.cpu().numpy()[:, None], best_i.cpu().numpy().astype(np.int64)[:, None]


def redo_flagged(
    tops: SetTops,
    values: dict[tuple[int, int], np.ndarray],
    z: np.ndarray,
    group: np.ndarray,
    weights: np.ndarray,
    masks: np.ndarray,
    sums: SetSums,
    offsets: np.ndarray,
) -> None:
    """Exact float64 r over their training set of the flagged (set, group, unit) pairs, merged into `tops`.

    values: (layer_idx, flat) -> activations over all stimuli (idx order)."""
    by_set_group: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for c, g, lay, flat in tops.flagged:
        by_set_group.setdefault((c, g), []).append((lay, flat))
    for (c, g), units in sorted(by_set_group.items()):
        rows = np.flatnonzero((group == g) & sums.row_ok[c])
        keep = (weights[g] > 0) & np.asarray(masks[c], bool)
        if not len(rows) or keep.sum() < 2:
            continue
        units = sorted(set(units))
        a = np.stack([values[u][keep] for u in units]).astype(np.float64)
        a -= a.mean(axis=1, keepdims=True)
        sd = np.sqrt((a * a).sum(axis=1))
        y = z[rows][:, keep]
        y = y - y.mean(axis=1, keepdims=True)
        ny = np.sqrt((y * y).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (y @ a.T) / np.outer(ny, np.where(sd > 0, sd, 1.0))
        r = np.where(sd[None, :] > 0, np.clip(r, -1.0, 1.0), -np.inf).astype(np.float32)
        index = np.array([int(offsets[lay]) + flat for lay, flat in units], dtype=np.int64)
        tops.merge(c, rows, r, np.broadcast_to(index, r.shape))
