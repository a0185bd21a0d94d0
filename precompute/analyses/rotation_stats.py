"""The streaming statistics behind the `rotations` analysis (precompute/analyses/rotations.py).

How it stays practical for thousands of channels. For site z (standardised over the stimuli, unit
norm) and position p with centred activations A_p (stimuli x N), the rotated units' r are

    r_p = (z^T A_p) Q / sqrt(diag(Q^T A_p^T A_p Q))

so one streaming pass over the stimuli (the model's ActivationSource, only this layer requested)
accumulates, per position, S_p = z^T A_p (sites x N) and either the scatter matrix A_p^T A_p (N x N:
"covariance" mode) or the centred activations themselves (stimuli x N: "direct" mode). A rotation then
costs H*W*N^3 (covariance: Scatter_p Q) or H*W*n*N^2 (direct: A_p Q), plus H*W*sites*N^2 for S_p Q,
and no inference. Covariance wins exactly when N < n (stimuli), and then also needs less memory
(N^2 vs n*N floats per position), so the mode is chosen by that comparison. Positions are processed in
chunks that fit MEMORY_BYTES, and the chunks of all best layers are packed into as few inference passes
as that bound allows (the V4-like and IT-like layers share one pass: `plan_passes`, `run_pass`).
Measured on synthetic-hvm x Lite0 and the controls (see docs/analyses.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from precompute.core.feeds import prefetch_images

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
    multiplication by a fixed reflection). The factorisation runs in torch's LAPACK (Householder, like
    numpy's, ~2x faster here for N ~ 1000; the same matrix to ~1e-14)."""
    import torch

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    g = torch.from_numpy(rng.standard_normal((n, n)))
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r))[None, :]
    sign, _ = torch.linalg.slogdet(q)
    if sign < 0:
        q[:, 0] = -q[:, 0]
    return q.numpy()


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
    _, rotated = rotated_best_rs(stats, [q], natural=False)
    return rotated[0]


def rotated_best_rs(
    stats: PositionStats, rotations: list[np.ndarray], *, natural: bool = True
) -> tuple[np.ndarray | None, np.ndarray]:
    """Each site's best r in the natural basis (None unless `natural`) and under each rotation ((runs, sites));
    -inf where no unit varies.

    The statistics are read once per block of positions for all rotations. The N^3 / n N^2 products run in
    float32 (r to ~1e-6; the contract is 1e-4), sums in float64. The natural basis needs no product (its
    variances are the diagonal), and a rotation equal to the identity (SO(1) has no other) reuses it."""
    import torch

    n_pos, n_sites, n = stats.cross.shape
    ident = [q.shape == (n, n) and np.array_equal(q, np.eye(n)) for q in rotations]
    want_natural = natural or any(ident)
    todo = [k for k, same in enumerate(ident) if not same]
    q64 = [torch.from_numpy(np.ascontiguousarray(rotations[k], dtype=np.float64)) for k in todo]
    q32 = [q.float() for q in q64]
    best_nat = torch.full((n_sites,), float("-inf"), dtype=torch.float64)
    best = torch.full((len(todo), n_sites), float("-inf"), dtype=torch.float64)
    depth = max(n, n_sites, stats.centred.shape[1] if stats.centred is not None else 1)
    per_pos = max(1, APPLY_BLOCK_BYTES // max(1, 4 * n * depth))

    def best_of(num, var, scale):
        ok = var > VARIANCE_FLOOR * torch.clamp(scale, min=1e-300)
        r = num / torch.sqrt(torch.where(ok, var, 1.0))[:, None, :]
        return r.masked_fill(~ok[:, None, :], float("-inf")).amax(dim=(0, 2))

    for p0 in range(0, n_pos, per_pos):
        p1 = min(n_pos, p0 + per_pos)
        cross = torch.from_numpy(stats.cross[p0:p1])
        if stats.scatter is not None:
            sc = torch.from_numpy(stats.scatter[p0:p1])
            sc32 = sc.float()
            scale = torch.diagonal(sc, dim1=1, dim2=2).amax(dim=1, keepdim=True)
            nat_var = torch.diagonal(sc32, dim1=1, dim2=2).double()  # = q_j^T S q_j in float32 for Q = I
        else:
            a = torch.from_numpy(stats.centred[p0:p1])
            nat_var = a.square().sum(dim=1, dtype=torch.float64)
            scale = nat_var.amax(dim=1, keepdim=True)
        if want_natural:
            best_nat = torch.maximum(best_nat, best_of(cross, nat_var, scale))
        for k in range(len(todo)):
            if stats.scatter is not None:
                var = (torch.matmul(sc32, q32[k]) * q32[k]).sum(dim=1, dtype=torch.float64)  # (block, N): q^T S q
            else:
                var = torch.matmul(a, q32[k]).square().sum(dim=1, dtype=torch.float64)
            best[k] = torch.maximum(best[k], best_of(torch.matmul(cross, q64[k]), var, scale))
    nat = best_nat.clamp(max=1.0).numpy()
    out = np.empty((len(rotations), n_sites))
    for i, k in enumerate(todo):
        out[k] = best[i].clamp(max=1.0).numpy()
    for k, same in enumerate(ident):
        if same:
            out[k] = nat
    return (nat if natural else None), out


def standardized_rows(responses: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm (float64); a constant row becomes all zeros (r = 0, never best)."""
    y = np.asarray(responses, dtype=np.float64)
    y = y - y.mean(axis=1, keepdims=True)
    norm = np.sqrt((y * y).sum(axis=1, keepdims=True))
    return np.where(norm > 0, y / np.where(norm > 0, norm, 1.0), 0.0)


class StatsAccumulator:
    """Per-position statistics of one layer over a chunk of positions, fed with inference batches.

    Activations are staged over several inference batches (so each product has >= 100 stimuli), shifted
    by the first stage's mean (float32 sums stay exact) and accumulated in float64. The stage is sized
    from the chunk alone, so the statistics do not depend on how the stimuli were batched for inference
    or on which other layers share the pass."""

    def __init__(
        self,
        layer,
        z: np.ndarray,
        stimuli: np.ndarray,
        positions: slice,
        mode: str,
        *,
        batch_size: int = INFERENCE_BATCH,
    ):
        import torch

        self.layer_idx = layer.layer_idx
        self.n_ch, hw = layer.channels, layer.height * layer.width
        self.pos = np.arange(hw)[positions]
        self.stimuli = np.asarray(stimuli, dtype=np.int64)
        m, n_stim, n_sites = len(self.pos), len(self.stimuli), z.shape[0]
        self.stage = int(np.clip(STAGE_BYTES // max(1, m * self.n_ch * 4), batch_size, 512))
        self.mode = mode
        self.cross = torch.zeros((n_sites, m, self.n_ch), dtype=torch.float64)  # (sites, positions, N)
        self.total = torch.zeros((m, self.n_ch), dtype=torch.float64)
        self.scatter = torch.zeros((m, self.n_ch, self.n_ch), dtype=torch.float64) if mode == "covariance" else None
        self.centred = np.empty((m, n_stim, self.n_ch), dtype=np.float32) if mode == "direct" else None
        self.zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
        self.shift = None
        self.done = 0  # stimuli flushed
        self.block: np.ndarray | None = None
        self.filled = 0  # rows of the current stage's block

    @property
    def n_stimuli(self) -> int:
        return len(self.stimuli)

    def add(self, acts: np.ndarray) -> None:
        """The layer's activations (batch, C, H, W) for this accumulator's next stimuli, in its order."""
        out = np.asarray(acts, dtype=np.float32).reshape(len(acts), self.n_ch, -1)[:, :, self.pos]
        out = out.transpose(0, 2, 1)  # (batch, positions, channels)
        k = 0
        while k < len(out):
            if self.block is None:
                rows = min(self.stage, self.n_stimuli - self.done)
                self.block = np.empty((rows, len(self.pos), self.n_ch), dtype=np.float32)
                self.filled = 0
            take = min(len(out) - k, len(self.block) - self.filled)
            self.block[self.filled : self.filled + take] = out[k : k + take]
            self.filled += take
            k += take
            if self.filled == len(self.block):
                self._flush()

    def _flush(self) -> None:
        import torch

        block, s0 = self.block, self.done  # (stage stimuli, positions, channels)
        rows, m, n = block.shape
        s1 = s0 + rows
        if self.shift is None:
            self.shift = block.mean(axis=0, dtype=np.float64).astype(np.float32)[None]
        block -= self.shift
        a = torch.from_numpy(block)
        # z^T A_p of every position at once: one (sites x stage) @ (stage x positions*channels) product
        # (added in place: float32 products promoted exactly, without a float64 temporary)
        self.cross.view(-1, m * n).add_(torch.matmul(self.zt[:, s0:s1], a.reshape(rows, m * n)))
        self.total += a.sum(dim=0, dtype=torch.float64)
        if self.scatter is not None:
            if n == 1:
                self.scatter[:, 0, 0] += a[:, :, 0].square().sum(dim=0, dtype=torch.float64)
            else:
                self.scatter.add_(torch.bmm(a.permute(1, 2, 0), a.permute(1, 0, 2)))
        else:
            self.centred[:, s0:s1, :] = block.transpose(1, 0, 2)
        self.done, self.block = s1, None

    def finish(self) -> PositionStats:
        if self.done != self.n_stimuli:
            raise RuntimeError(f"layer {self.layer_idx}: {self.done} of {self.n_stimuli} stimuli accumulated")
        mean = (self.total / self.n_stimuli).numpy()
        if self.scatter is not None:
            sc = self.scatter.numpy()
            sc -= self.n_stimuli * mean[:, :, None] * mean[:, None, :]
            # cross needs no correction: each z row sums to 0 over the stimuli
            return PositionStats(self._cross(), scatter=sc)
        self.centred -= mean[:, None, :].astype(np.float32)
        return PositionStats(self._cross(), centred=self.centred)

    def _cross(self) -> np.ndarray:
        return self.cross.permute(1, 0, 2).contiguous().numpy()


def run_pass(source, feed, accumulators: list[StatsAccumulator], *, batch_size: int = INFERENCE_BATCH) -> None:
    """One inference pass over the union of the accumulators' stimuli, asking the source for every layer they
    need at once (an ONNX model runs once for all of them), each accumulator fed its own stimuli."""
    union = np.unique(np.concatenate([acc.stimuli for acc in accumulators]))
    layers = sorted({acc.layer_idx for acc in accumulators})
    for acc in accumulators:
        if np.any(np.diff(acc.stimuli) <= 0):
            raise ValueError("an accumulator's stimuli must be strictly increasing")

    batches = [union[b0 : b0 + batch_size] for b0 in range(0, len(union), batch_size)]
    for idx, images, _waited in prefetch_images(feed, batches):  # the next batch decodes meanwhile
        outs = source.activations(images, [feed.stimulus_ids[int(i)] for i in idx], layer_indices=layers)
        by_layer = dict(zip(layers, outs, strict=True))
        for acc in accumulators:
            sel = np.isin(idx, acc.stimuli, assume_unique=True)
            if sel.all():
                acc.add(by_layer[acc.layer_idx])
            elif sel.any():
                acc.add(np.asarray(by_layer[acc.layer_idx])[sel])


def accumulate_stats(
    source,
    feed,
    layer_idx: int,
    z: np.ndarray,
    stimuli: np.ndarray,
    positions: slice,
    mode: str,
    *,
    batch_size: int = INFERENCE_BATCH,
) -> PositionStats:
    """One streaming pass over `stimuli` (increasing idx into the feed; z's columns follow it) for a chunk of
    positions of one layer."""
    acc = StatsAccumulator(source.layers[layer_idx], z, stimuli, positions, mode, batch_size=batch_size)
    run_pass(source, feed, [acc], batch_size=batch_size)
    return acc.finish()


@dataclass
class LayerJob:
    """One layer's rotation scores to compute: its sites' responses (sites, len(stimuli)) to `stimuli`
    (strictly increasing feed indices) and the rotations (N x N) to score."""

    layer_idx: int
    responses: np.ndarray
    stimuli: np.ndarray
    rotations: list[np.ndarray]


def plan_passes(jobs: list[LayerJob], layers, memory_bytes: int) -> list[list[tuple[int, slice]]]:
    """Split every job's positions into chunks that fit `memory_bytes` and pack the chunks into passes
    (first fit, in job order) whose statistics together fit it: [(job index, positions), ...] per pass."""
    chunks: list[tuple[int, slice, int]] = []
    for j, job in enumerate(jobs):
        layer = layers[job.layer_idx]
        hw = layer.height * layer.width
        mode = choose_mode(len(job.stimuli), layer.channels)
        per_pos = bytes_per_position(job.responses.shape[0], len(job.stimuli), layer.channels, mode)
        chunk = max(1, min(hw, memory_bytes // per_pos))
        chunks += [
            (j, slice(p0, min(hw, p0 + chunk)), per_pos * (min(hw, p0 + chunk) - p0)) for p0 in range(0, hw, chunk)
        ]
    passes: list[list[tuple[int, slice]]] = []
    used: list[int] = []
    for j, sl, size in chunks:
        for k, u in enumerate(used):
            if u + size <= memory_bytes:
                passes[k].append((j, sl))
                used[k] += size
                break
        else:
            passes.append([(j, sl)])
            used.append(size)
    return passes


def layers_rotation_scores(
    source, feed, jobs: list[LayerJob], *, memory_bytes: int = MEMORY_BYTES
) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """For each job, each site's best r in the natural basis and under each rotation: ((sites,), (runs, sites),
    info), with as few inference passes as the memory bound allows (layers share a pass)."""
    zs = [standardized_rows(job.responses) for job in jobs]
    modes = [choose_mode(len(job.stimuli), source.layers[job.layer_idx].channels) for job in jobs]
    natural = [np.full(z.shape[0], -np.inf) for z in zs]
    rotated = [np.full((len(job.rotations), z.shape[0]), -np.inf) for job, z in zip(jobs, zs, strict=True)]
    t_pass = [0.0] * len(jobs)
    t_rot = [0.0] * len(jobs)
    n_chunks = [0] * len(jobs)
    passes = plan_passes(jobs, source.layers, memory_bytes)
    for chunks in passes:
        t0 = time.perf_counter()
        accs = [
            StatsAccumulator(source.layers[jobs[j].layer_idx], zs[j], jobs[j].stimuli, sl, modes[j]) for j, sl in chunks
        ]
        run_pass(source, feed, accs)
        share = (time.perf_counter() - t0) / len(chunks)
        for (j, _), acc in zip(chunks, accs, strict=True):
            t1 = time.perf_counter()
            stats = acc.finish()
            nat, rot = rotated_best_rs(stats, jobs[j].rotations)
            natural[j] = np.maximum(natural[j], nat)
            if len(rot):
                rotated[j] = np.maximum(rotated[j], rot)
            t_pass[j] += share
            t_rot[j] += time.perf_counter() - t1
            n_chunks[j] += 1
            del stats
        del accs
    infos = [
        {
            "mode": modes[j],
            "passes": n_chunks[j],
            "inference_passes": len(passes),
            "channels": source.layers[job.layer_idx].channels,
            "positions": source.layers[job.layer_idx].height * source.layers[job.layer_idx].width,
            "pass_s": round(t_pass[j], 2),
            "rotations_s": round(t_rot[j], 2),
        }
        for j, job in enumerate(jobs)
    ]
    return list(zip(natural, rotated, infos, strict=True))


def layer_rotation_scores(
    source,
    feed,
    layer_idx: int,
    responses: np.ndarray,
    stimuli: np.ndarray,
    rotations: list[np.ndarray],
    *,
    memory_bytes: int = MEMORY_BYTES,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Best r per site in the natural basis and under each rotation: ((sites,), (runs, sites), info).

    `responses` (sites, len(stimuli)) are the sites' responses to `stimuli` (feed indices)."""
    (out,) = layers_rotation_scores(
        source, feed, [LayerJob(layer_idx, responses, np.asarray(stimuli), rotations)], memory_bytes=memory_bytes
    )
    return out
