"""Exact, deterministic top-k: highest value first, ties broken by the lower index.

Indices are global unit indices (the unit's layer offset plus its flat index c*H*W + y*W + x), so
"lower index" is "lower layer_idx, then lower flat index" (DESIGN.md, Contracts). Missing entries are
padded with value -inf and index -1.
"""

from __future__ import annotations

import numpy as np

PAD_INDEX = -1


def order_candidates(values: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first k of (values, index) sorted by value descending then index ascending.

    Entries with value -inf (or NaN) are dropped (padded). Works on any candidate set, so merging
    per-segment top-k lists into a per-layer or whole-model top-k is this function on their union.
    """
    values = np.asarray(values, dtype=np.float32)
    index = np.asarray(index, dtype=np.int64)
    bad = ~np.isfinite(values) | (index < 0)
    values = np.where(bad, -np.inf, values)
    # Padding sorts last: its index is replaced by the largest int64 before ordering.
    sort_index = np.where(bad, np.iinfo(np.int64).max, index)
    by_index = np.argsort(sort_index, axis=1, kind="stable")
    v1 = np.take_along_axis(values, by_index, axis=1)
    i1 = np.take_along_axis(index, by_index, axis=1)
    by_value = np.argsort(-v1, axis=1, kind="stable")[:, :k]
    out_v = np.take_along_axis(v1, by_value, axis=1)
    out_i = np.take_along_axis(i1, by_value, axis=1)
    out_i = np.where(np.isfinite(out_v), out_i, PAD_INDEX)
    if out_v.shape[1] < k:  # fewer candidates than k: pad
        pad = k - out_v.shape[1]
        out_v = np.pad(out_v, ((0, 0), (0, pad)), constant_values=-np.inf)
        out_i = np.pad(out_i, ((0, 0), (0, pad)), constant_values=PAD_INDEX)
    return out_v, out_i


def topk_rows(x, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of every row of a 2-D torch tensor (rows, n): values (float32) and local indices.

    torch.topk picks arbitrarily among equal values, so it is asked for k + 1: if the (k+1)-th value
    is below the k-th, every value equal to the k-th is among the candidates and ordering them by
    (value, index) is exact; otherwise (a tie across the boundary, rare) the row is solved exactly.
    """
    import torch  # heavy: loaded when the engine runs

    _rows, n = x.shape
    k_eff = min(k, n)
    m = min(n, k_eff + 1)
    vals, idx = torch.topk(x, m, dim=1, largest=True, sorted=True)
    vals = vals.cpu().numpy()
    idx = idx.cpu().numpy().astype(np.int64)
    out_v, out_i = order_candidates(vals, idx, k_eff)
    if m > k_eff:
        tied = (vals[:, k_eff - 1] == vals[:, m - 1]) & np.isfinite(vals[:, k_eff - 1])
        for row in np.flatnonzero(tied):
            out_v[row], out_i[row] = _exact_row(x[row].cpu().numpy(), k_eff)
    if k_eff < k:
        out_v = np.pad(out_v, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
        out_i = np.pad(out_i, ((0, 0), (0, k - k_eff)), constant_values=PAD_INDEX)
    return out_v, out_i


def _exact_row(row: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    part = np.argpartition(-row, k - 1)[:k]
    threshold = row[part].min()
    above = np.flatnonzero(row > threshold)
    equal = np.flatnonzero(row == threshold)[: k - above.size]
    chosen = np.concatenate([above, equal])
    v, i = order_candidates(row[chosen][None, :], chosen[None, :], k)
    return v[0], i[0]
