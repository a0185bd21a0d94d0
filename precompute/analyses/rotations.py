"""Random rotations of the feature basis (Figure 9): is the natural basis of a layer special?

For each region's best layer (the "V4-like" / "IT-like" layer: highest median best-in-layer r) with N
feature maps, draw rotations Q uniformly (Haar measure) from SO(N), apply each to the N-vector of
activations at every spatial position (unit j at position p of the rotated layer is a_p . q_j), and
score neural correlation on the rotated layer: the median over the region's sites of each site's best
r over the rotated layer's units. 10 runs beside the natural basis (Q = I). Reference bar
(`neural_self`): the region's neural population (trial-averaged responses, sites as features) rotated
by a Haar rotation of SO(n_sites), each site scored by its best match among the rotated population's
"units".

How it stays practical for thousands of channels. For site z (standardised over the stimuli, unit
norm) and position p with centred activations A_p (stimuli x N), the rotated units' r are

    r_p = (z^T A_p) Q / sqrt(diag(Q^T A_p^T A_p Q))

so one streaming pass over the stimuli (the model's ActivationSource, only this layer requested)
accumulates, per position, S_p = z^T A_p (sites x N) and either the scatter matrix A_p^T A_p (N x N:
"covariance" mode) or the centred activations themselves (stimuli x N: "direct" mode). A rotation then
costs H*W*N^3 (covariance: Scatter_p Q) or H*W*n*N^2 (direct: A_p Q), plus H*W*sites*N^2 for S_p Q,
and no inference. Covariance wins exactly when N < n (stimuli), and then also needs less memory
(N^2 vs n*N floats per position), so the mode is chosen by that comparison. Positions are processed in
chunks that fit MEMORY_BYTES, each chunk one inference pass. Measured on synthetic-hvm x Lite0 (see
docs/analyses.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from precompute.analyses import common
from precompute.analyze import Analysis, AnalysisContext, register

log = logging.getLogger(__name__)

N_RUNS = 10
#: bound on the per-position statistics held at once (a larger layer is split into position passes)
MEMORY_BYTES = 3 << 29  # 1.5 GiB
#: bound on one stage of staged activations (stimuli x positions x channels, float32)
STAGE_BYTES = 192 << 20
INFERENCE_BATCH = 16
#: positions per block when a rotation is applied (bounds the (block, N, N) temporaries)
APPLY_BLOCK_BYTES = 128 << 20
#: a rotated unit whose variance is below this fraction of the position's largest channel second
#: moment is at float precision's floor: treated as constant (never matched), like the engine
VARIANCE_FLOOR = 1e-10


# ---------------------------------------------------------------------------------------------- Haar rotations
def haar_rotation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly (Haar measure) from SO(n), float64 (n x n).

    QR of a standard Gaussian matrix, with the signs of R's diagonal moved into Q (plain QR is not
    Haar: its Q depends on the factorisation's sign convention; Mezzadri 2007), gives Haar on O(n);
    flipping one column when det = -1 maps the other coset onto SO(n) and keeps the measure (right
    multiplication by a fixed reflection)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    g = rng.standard_normal((n, n))
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))[None, :]
    sign, _ = np.linalg.slogdet(q)
    if sign < 0:
        q[:, 0] = -q[:, 0]
    return q


# ---------------------------------------------------------------------------------------------- statistics
@dataclass
class PositionStats:
    """Per-position sufficient statistics of one layer over a chunk of positions.

    cross:   (positions, sites, N) z^T A_p (z: unit-norm standardised site responses)
    scatter: (positions, N, N) centred A_p^T A_p (covariance mode) or None
    centred: (positions, stimuli, N) centred activations (direct mode) or None
    """

    cross: np.ndarray
    scatter: np.ndarray | None = None
    centred: np.ndarray | None = None

    @property
    def mode(self) -> str:
        return "covariance" if self.scatter is not None else "direct"


def choose_mode(n_stimuli: int, channels: int) -> str:
    """'covariance' when N < n (N^3 < n N^2 per position and N^2 < n N floats held), else 'direct'."""
    return "covariance" if channels < n_stimuli else "direct"


def bytes_per_position(n_sites: int, n_stimuli: int, channels: int, mode: str) -> int:
    held = channels * channels * 8 if mode == "covariance" else n_stimuli * channels * 4
    return n_sites * channels * 8 + held


def stats_from_activations(z: np.ndarray, acts: np.ndarray, mode: str) -> PositionStats:
    """Statistics from in-memory activations (stimuli, N, positions) and unit-norm z (sites, stimuli)."""
    a = np.asarray(acts, dtype=np.float64).transpose(2, 0, 1)  # (positions, stimuli, N)
    a = a - a.mean(axis=1, keepdims=True)
    cross = np.matmul(np.asarray(z, np.float64)[None], a)
    if mode == "covariance":
        return PositionStats(cross, scatter=np.matmul(a.transpose(0, 2, 1), a))
    return PositionStats(cross, centred=a.astype(np.float32))


def rotated_best_r(stats: PositionStats, q: np.ndarray) -> np.ndarray:
    """Each site's best r over all positions and rotated channels (-inf when no unit varies): (sites,)."""
    import torch

    q64 = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float64))
    q32 = q64.float()  # the N^3 / n N^2 products in float32 (r to ~1e-6; the contract is 1e-4), sums in float64
    n_pos, n_sites, n = stats.cross.shape
    best = torch.full((n_sites,), float("-inf"), dtype=torch.float64)
    depth = max(n, n_sites, stats.centred.shape[1] if stats.centred is not None else 1)
    per_pos = max(1, APPLY_BLOCK_BYTES // max(1, 4 * n * depth))
    for p0 in range(0, n_pos, per_pos):
        p1 = min(n_pos, p0 + per_pos)
        if stats.scatter is not None:
            sc = torch.from_numpy(stats.scatter[p0:p1])
            var = (torch.matmul(sc.float(), q32) * q32).sum(dim=1, dtype=torch.float64)  # (block, N): q_j^T S q_j
            scale = torch.diagonal(sc, dim1=1, dim2=2).amax(dim=1, keepdim=True)
        else:
            a = torch.from_numpy(stats.centred[p0:p1])
            var = torch.matmul(a, q32).square().sum(dim=1, dtype=torch.float64)
            scale = a.square().sum(dim=1, dtype=torch.float64).amax(dim=1, keepdim=True)
        num = torch.matmul(torch.from_numpy(stats.cross[p0:p1]), q64)  # (block, sites, N)
        ok = var > VARIANCE_FLOOR * torch.clamp(scale, min=1e-300)
        r = num / torch.sqrt(torch.where(ok, var, 1.0))[:, None, :]
        r = r.masked_fill(~ok[:, None, :], float("-inf"))
        best = torch.maximum(best, r.amax(dim=(0, 2)))
    return best.clamp(max=1.0).numpy()


def standardized_rows(responses: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm (float64); a constant row becomes all zeros (r = 0, never best)."""
    y = np.asarray(responses, dtype=np.float64)
    y = y - y.mean(axis=1, keepdims=True)
    norm = np.sqrt((y * y).sum(axis=1, keepdims=True))
    return np.where(norm > 0, y / np.where(norm > 0, norm, 1.0), 0.0)


def accumulate_stats(source, feed, layer_idx: int, z: np.ndarray, stimuli: np.ndarray, positions: slice,
                     mode: str, *, batch_size: int = INFERENCE_BATCH) -> PositionStats:
    """One streaming pass over `stimuli` (idx into the feed; z's columns follow it) for a chunk of positions.

    Activations are shifted by the first stage's mean (float32 sums stay exact), staged over several
    inference batches so each product has >= 100 stimuli, and accumulated in float64."""
    import torch

    layer = source.layers[layer_idx]
    n_ch, hw = layer.channels, layer.height * layer.width
    pos = np.arange(hw)[positions]
    m, n_stim, n_sites = len(pos), len(stimuli), z.shape[0]
    stage = int(np.clip(STAGE_BYTES // max(1, m * n_ch * 4), batch_size, 512))
    cross = torch.zeros((m, n_sites, n_ch), dtype=torch.float64)
    total = torch.zeros((m, n_ch), dtype=torch.float64)
    scatter = torch.zeros((m, n_ch, n_ch), dtype=torch.float64) if mode == "covariance" else None
    centred = np.empty((m, n_stim, n_ch), dtype=np.float32) if mode == "direct" else None
    zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    shift = None
    for s0 in range(0, n_stim, stage):
        s1 = min(n_stim, s0 + stage)
        block = np.empty((m, s1 - s0, n_ch), dtype=np.float32)
        for b0 in range(s0, s1, batch_size):
            b1 = min(s1, b0 + batch_size)
            idx = stimuli[b0:b1]
            (out,) = source.activations(feed.load(idx), [feed.stimulus_ids[int(i)] for i in idx],
                                        layer_indices=[layer_idx])
            out = np.asarray(out, dtype=np.float32).reshape(b1 - b0, n_ch, hw)[:, :, pos]
            block[:, b0 - s0:b1 - s0, :] = out.transpose(2, 0, 1)
        if shift is None:
            shift = block.mean(axis=1, dtype=np.float64).astype(np.float32)[:, None, :]
        block -= shift
        a = torch.from_numpy(block)
        cross += torch.matmul(zt[None, :, s0:s1], a).double()
        total += a.sum(dim=1, dtype=torch.float64)
        if scatter is not None:
            scatter += torch.bmm(a.transpose(1, 2), a).double()
        else:
            centred[:, s0:s1, :] = block
    mean = (total / n_stim).numpy()
    if scatter is not None:
        sc = scatter.numpy()
        sc -= n_stim * mean[:, :, None] * mean[:, None, :]
        # cross needs no correction: each z row sums to 0 over the stimuli
        return PositionStats(cross.numpy(), scatter=sc)
    centred -= mean[:, None, :].astype(np.float32)
    return PositionStats(cross.numpy(), centred=centred)


def layer_rotation_scores(source, feed, layer_idx: int, responses: np.ndarray, stimuli: np.ndarray,
                          rotations: list[np.ndarray], *, memory_bytes: int = MEMORY_BYTES
                          ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Best r per site in the natural basis and under each rotation: ((sites,), (runs, sites), info).

    `responses` (sites, len(stimuli)) are the sites' responses to `stimuli` (feed indices)."""
    layer = source.layers[layer_idx]
    n_ch, hw = layer.channels, layer.height * layer.width
    z = standardized_rows(responses)
    mode = choose_mode(len(stimuli), n_ch)
    per_pos = bytes_per_position(z.shape[0], len(stimuli), n_ch, mode)
    chunk = max(1, min(hw, memory_bytes // per_pos))
    natural = np.full(z.shape[0], -np.inf)
    rotated = np.full((len(rotations), z.shape[0]), -np.inf)
    t_pass = t_rot = 0.0
    for p0 in range(0, hw, chunk):
        t0 = time.perf_counter()
        stats = accumulate_stats(source, feed, layer_idx, z, stimuli, slice(p0, min(hw, p0 + chunk)), mode)
        t1 = time.perf_counter()
        natural = np.maximum(natural, rotated_best_r(stats, np.eye(n_ch)))
        for k, q in enumerate(rotations):
            rotated[k] = np.maximum(rotated[k], rotated_best_r(stats, q))
        t_pass += t1 - t0
        t_rot += time.perf_counter() - t1
        del stats
    info = {"mode": mode, "passes": -(-hw // chunk), "channels": n_ch, "positions": hw,
            "pass_s": round(t_pass, 2), "rotations_s": round(t_rot, 2)}
    return natural, rotated, info


def neural_self_rotation(responses: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each site's best r among the rotated population's units U = Q^T R (sites x stimuli): (sites,)."""
    from precompute.statistics.correlation import pearson_all

    r = np.asarray(responses, dtype=np.float64)
    units = q.T @ r
    out = pearson_all(r, units)
    return np.nanmax(np.where(np.isnan(out), -np.inf, out), axis=1)


def _median(best: np.ndarray) -> float:
    finite = best[np.isfinite(best)]
    return float(np.median(finite)) if finite.size else float("nan")


# ---------------------------------------------------------------------------------------------- analysis
def run_rotations(ctx: AnalysisContext) -> None:
    """Write `rotations` for one (dataset, model): natural, N_RUNS rotated and N_RUNS neural_self rows per region."""
    from precompute.statistics.correlation import complete_stimuli

    sites = ctx.sites()
    best = common.best_layers(ctx.layer_matches(rank=1), sites)
    if not best:
        log.warning("rotations %s x %s: no layer matches; nothing to do", ctx.dataset, ctx.model)
        return
    responses = ctx.responses()
    by_layer: dict[int, list[str]] = {}
    for region, (layer_idx, _) in best.items():
        by_layer.setdefault(layer_idx, []).append(region)
    rows = []
    opened = common.try_open_model(ctx.con, ctx.dataset, ctx.model, ctx.store, "rotations")
    if opened is None:
        return
    source, feed = opened
    try:
        for layer_idx, regions in sorted(by_layer.items()):
            mask = sites["region"].isin(regions).to_numpy()
            resp = responses[sites.loc[mask, "idx"].to_numpy(int)]
            keep = np.flatnonzero(complete_stimuli(resp))
            n_ch = source.layers[layer_idx].channels
            seeds = [common.derived_seed(ctx.seed, "rotations", ctx.dataset, ctx.model, layer_idx, k)
                     for k in range(N_RUNS)]
            rotations = [haar_rotation(n_ch, np.random.default_rng(s)) for s in seeds]
            t0 = time.perf_counter()
            natural, rotated, info = layer_rotation_scores(source, feed, layer_idx, resp[:, keep], keep, rotations)
            log.info("rotations %s x %s layer %d (%s): %s, %.1f s", ctx.dataset, ctx.model, layer_idx,
                     "/".join(regions), info, time.perf_counter() - t0)
            site_region = sites.loc[mask, "region"].to_numpy()
            for region in regions:
                sel = site_region == region
                rows.append((region, layer_idx, "natural", 0, _median(natural[sel]), None))
                rows += [(region, layer_idx, "rotated", k, _median(rotated[k, sel]), seeds[k]) for k in range(N_RUNS)]
    finally:
        source.close()
    for region, (layer_idx, _) in best.items():
        resp = responses[sites.loc[sites["region"] == region, "idx"].to_numpy(int)]
        resp = resp[:, complete_stimuli(resp)]
        for k in range(N_RUNS):
            seed = common.derived_seed(ctx.seed, "rotations", ctx.dataset, "neural_self", region, k)
            q = haar_rotation(resp.shape[0], np.random.default_rng(seed))
            rows.append((region, layer_idx, "neural_self", k, _median(neural_self_rotation(resp, q)), seed))
    df = pd.DataFrame(rows, columns=["region", "layer_idx", "basis", "run", "value", "seed"])
    df["seed"] = df["seed"].astype("Int64")
    common.replace_rows(ctx.con, "rotations", ctx.dataset, ctx.model, df)


register(Analysis(
    "rotations",
    "neural correlation of the V4-/IT-like layer under 10 Haar-random rotations of SO(N) vs natural (Fig. 9)",
    run_rotations,
    default_models="main",
))
