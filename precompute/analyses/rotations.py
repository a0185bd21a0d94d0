"""Random rotations of the feature basis (Figure 9): is the natural basis of a layer special?

For each region's best layer (the "V4-like" / "IT-like" layer: highest median best-in-layer r) with N
feature maps, draw rotations Q uniformly (Haar measure) from SO(N), apply each to the N-vector of
activations at every spatial position (unit j at position p of the rotated layer is a_p . q_j), and
score neural correlation on the rotated layer: the median over the region's sites of each site's best
r over the rotated layer's units. 10 runs beside the natural basis (Q = I). Reference bar
(`neural_self`): the region's neural population (trial-averaged responses, sites as features) rotated
by a Haar rotation of SO(n_sites), each site scored by its best match among the rotated population's
"units".

The per-position statistics that make a rotation cheap for thousands of channels (one streaming pass,
no inference per rotation) are precompute/analyses/rotation_stats.py.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from precompute.analyses import common
from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.analyses.rotation_stats import LayerJob, haar_rotation, layers_rotation_scores
from precompute.statistics.correlation import complete_stimuli, pearson_all
from precompute.statistics.scores import best_layers

log = logging.getLogger(__name__)

N_RUNS = 10


def neural_self_rotation(responses: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each site's best r among the rotated population's units U = Q^T R (sites x stimuli): (sites,)."""
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
    sites = ctx.sites()
    best = best_layers(ctx.layer_matches(rank=1), sites)
    if not best:
        log.warning("rotations %s x %s: no layer matches; nothing to do", ctx.dataset, ctx.model)
        return
    responses = ctx.responses()
    by_layer: dict[int, list[str]] = {}
    for region, (layer_idx, _) in best.items():
        by_layer.setdefault(layer_idx, []).append(region)
    rows = []
    opened = common.try_open_model(ctx, "rotations")
    if opened is None:
        common.record_note(ctx, f"{ctx.model} cannot be run here (no ONNX file): rotations need its whole layers")
        return
    source, feed = opened
    jobs, masks = [], []
    for layer_idx, regions in sorted(by_layer.items()):
        mask = sites["region"].isin(regions).to_numpy()
        resp = responses[sites.loc[mask, "idx"].to_numpy(int)]
        keep = np.flatnonzero(complete_stimuli(resp))
        n_ch = source.layers[layer_idx].channels
        seeds = [
            common.derived_seed(ctx.seed, "rotations", ctx.dataset, ctx.model, layer_idx, k) for k in range(N_RUNS)
        ]
        jobs.append(
            LayerJob(layer_idx, resp[:, keep], keep, [haar_rotation(n_ch, np.random.default_rng(s)) for s in seeds])
        )
        masks.append((mask, regions, seeds))
    t0 = time.perf_counter()
    try:
        # the V4-like and IT-like layers share one inference pass
        results = layers_rotation_scores(source, feed, jobs)
    finally:
        source.close()
    for job, (mask, regions, seeds), (natural, rotated, info) in zip(jobs, masks, results, strict=True):
        log.info("rotations %s x %s layer %d (%s): %s", ctx.dataset, ctx.model, job.layer_idx, "/".join(regions), info)
        site_region = sites.loc[mask, "region"].to_numpy()
        for region in regions:
            sel = site_region == region
            rows.append((region, job.layer_idx, "natural", 0, _median(natural[sel]), None))
            rows += [(region, job.layer_idx, "rotated", k, _median(rotated[k, sel]), seeds[k]) for k in range(N_RUNS)]
    log.info("rotations %s x %s: %d layer(s) in %.1f s", ctx.dataset, ctx.model, len(jobs), time.perf_counter() - t0)
    single = sorted(job.layer_idx for job in jobs if source.layers[job.layer_idx].channels == 1)
    common.record_note(
        ctx,
        f"layer {', '.join(map(str, single))} has a single feature map: SO(1) holds only the "
        "identity, so its rotated rows equal the natural one"
        if single
        else None,
    )
    for region, (layer_idx, _) in best.items():
        resp = responses[sites.loc[sites["region"] == region, "idx"].to_numpy(int)]
        resp = resp[:, complete_stimuli(resp)]
        for k in range(N_RUNS):
            seed = common.derived_seed(ctx.seed, "rotations", ctx.dataset, "neural_self", region, k)
            q = haar_rotation(resp.shape[0], np.random.default_rng(seed))
            rows.append((region, layer_idx, "neural_self", k, _median(neural_self_rotation(resp, q)), seed))
    df = pd.DataFrame(rows, columns=["region", "layer_idx", "basis", "run", "value", "seed"])
    df["seed"] = df["seed"].astype("Int64")
    ctx.replace_rows("rotations", df)


register(
    Analysis(
        "rotations",
        "neural correlation of the V4-/IT-like layer under 10 Haar-random rotations of SO(N) vs natural (Fig. 9)",
        run_rotations,
        default_models="main",
    )
)
