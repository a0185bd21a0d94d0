"""Cross-validated matching: select each site's best unit on training stimuli, score it on held-out ones.

The paper's neural correlation chooses and scores a unit on the same stimuli, which favours models
with more units. Here a site's unit is chosen on a training set and its r is measured on the stimuli
left out (float64, from the selected unit's gathered activations).

Protocols (docs/metrics.md has the reasons):
- split-half: random halves stratified by object, each used in both directions (select on one half,
  score on the other); 1 half by default, 5 with --protocol paper. Selection is over ALL units: the
  training copies of the sites are extra rows of the statistics pass (streaming_pass.py).
- neuron_to_neuron (Brain-Score): 10 stratified 90/10 splits. With --protocol paper the selection is
  over all units (10 more row blocks); by default it is within each site's candidate pool, its
  full-data top-K (`matches`, K = 100 in the demo), whose activations are already gathered: free, and
  the `pool_agreement` score says how often that pool choice equals the all-units choice (measured on
  the split-half training sets, where both are known).
- selection curve (Figure S1): one stratified training set per fraction of the stimuli, scored on the rest.

Intervals: every held-out median has one over sites (`heldout_split_half`, `heldout_n2n`) and one over
stimuli (`heldout_split_half_stimuli`, `heldout_n2n_stimuli`: the held-out stimuli resampled with each
site's selected unit held fixed, `heldout_bootstrap_medians`).

Analyses registered here: `crossval` (n2n, stability, selection curve, pool agreement; Lite0 and its
controls in the demo) and `heldout_split_half` (every model; writes site_scores `heldout_r` and the
attenuation-corrected `heldout_ceiled` through ceiling.write_heldout_ceiled).
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pandas as pd

from precompute.analyze import Analysis, AnalysisContext, register
from precompute.statistics.ceiling import write_heldout_ceiled
from precompute.statistics.correlation import PairMoments
from precompute.statistics.resample import (
    LEVEL,
    median_interval,
    nanmedian_axis1,
    percentile_interval,
    stimulus_count_chunks,
)

log = logging.getLogger(__name__)

#: values (candidates x stimuli) per chunk of sites in select_in_pool: ~8 MB per float64 temporary
POOL_CHUNK_VALUES = 1 << 20


# ---------------------------------------------------------------------------------------------- pure functions
def masked_pearson_rows(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """r between row i of `a` and row i of `b` over the stimuli where mask[i] (or a 1-D mask) is True
    and both are finite; NaN when fewer than 3 such stimuli or either side is constant there."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    m = np.broadcast_to(np.asarray(mask, dtype=bool), a.shape) & np.isfinite(a) & np.isfinite(b)
    n = m.sum(axis=1)
    w = m.astype(np.float64)
    a0 = np.where(m, a, 0.0)
    b0 = np.where(m, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = a0.sum(axis=1) / n
        mb = b0.sum(axis=1) / n
        da = w * (a0 - ma[:, None])
        db = w * (b0 - mb[:, None])
        saa, sbb = (da * da).sum(axis=1), (db * db).sum(axis=1)
        denom = np.sqrt(saa * sbb)
        tiny = 1e-24 * np.maximum((w * a0 * a0).sum(axis=1) * (w * b0 * b0).sum(axis=1), 1e-300)
        r = (da * db).sum(axis=1) / denom
    return np.where((n >= 3) & (denom > np.sqrt(tiny)), np.clip(r, -1.0, 1.0), np.nan)


def heldout_r(responses: np.ndarray, selected_values: np.ndarray, train_masks: np.ndarray) -> np.ndarray:
    """(sets, sites) r of each training set's selected unit on that set's held-out stimuli (its complement).

    responses (sites, stimuli); selected_values (sets, sites, stimuli): the activations of the unit each
    site selected on each training set (NaN rows where none was selected)."""
    responses = np.asarray(responses, dtype=np.float64)
    return np.stack([masked_pearson_rows(responses, selected_values[t], ~np.asarray(train_masks[t], bool))
                     for t in range(len(train_masks))]) if len(train_masks) else np.zeros((0, len(responses)))


def heldout_bootstrap_medians(responses: np.ndarray, selected_values: np.ndarray, train_masks: np.ndarray,
                              site_groups: list[np.ndarray], n_resamples: int, rng: np.random.Generator
                              ) -> np.ndarray:
    """(n_resamples, groups) median over each group's sites of the held-out r, over stimulus resamples.

    Each resample draws the stimuli with replacement (`stimulus_count_chunks`: the same draw for every
    site and every training set); each set's held-out r is recomputed over its held-out stimuli (the
    complement of its training mask) weighted by their draw counts, with every site's selected unit held
    fixed (the selection is not redone); a site's held-out r is the mean over sets (NaN sets left out),
    as `heldout_r` + the per-site mean do on the full sample. A group's median leaves out sites without
    an r. Vectorised: a few matrix products per (set, chunk of resamples), no loop over sites.

    responses (sites, stimuli); selected_values (sets, sites, stimuli); train_masks (sets, stimuli);
    site_groups: index arrays of sites (e.g. one per region)."""
    responses = np.asarray(responses, dtype=np.float64)
    holdout = ~np.asarray(train_masks, dtype=bool)
    n_sets, _, n_stim = np.shape(selected_values)
    # each set's per-stimulus terms, on its held-out stimuli only (computed once for all resamples)
    cols = [np.flatnonzero(h) for h in holdout]
    moments = [PairMoments(responses, selected_values[t]).columns(cols[t]) for t in range(n_sets)]
    out = []
    for counts in stimulus_count_chunks(n_stim, n_resamples, rng):
        total = np.zeros((len(counts), len(responses)))
        n_ok = np.zeros_like(total)
        for t in range(n_sets):
            r = moments[t].pearson(counts[:, cols[t]])
            ok = np.isfinite(r)
            total += np.where(ok, r, 0.0)
            n_ok += ok
        with np.errstate(invalid="ignore", divide="ignore"):
            per_site = np.where(n_ok > 0, total / np.maximum(n_ok, 1), np.nan)
        out.append(np.stack([nanmedian_axis1(per_site[:, np.asarray(g, int)]) if len(g) else
                             np.full(len(counts), np.nan) for g in site_groups], axis=1))
    return np.concatenate(out, axis=0) if out else np.zeros((0, len(site_groups)))


def stimulus_interval_rows(sites: pd.DataFrame, per_site: np.ndarray, responses: np.ndarray,
                           selected_values: np.ndarray, train_masks: np.ndarray, metric: str, n_resamples: int,
                           rng: np.random.Generator, level: float = LEVEL) -> list[tuple]:
    """(region, metric, median, low, high) per region: the held-out median with its stimulus-bootstrap
    interval (`heldout_bootstrap_medians`; all regions share each resample)."""
    regions = sorted(sites["region"].unique())
    groups = [np.flatnonzero((sites["region"] == g).to_numpy() & np.isfinite(per_site)) for g in regions]
    boot = heldout_bootstrap_medians(responses, selected_values, train_masks, groups, n_resamples, rng)
    lo, hi = percentile_interval(boot, level)
    return [(g, metric, float(np.median(per_site[idx])) if len(idx) else np.nan, float(lo[i]), float(hi[i]))
            for i, (g, idx) in enumerate(zip(regions, groups, strict=True))]


def selection_stability(selected: np.ndarray) -> np.ndarray:
    """(sites,) fraction of training sets whose selected unit is the site's modal unit (ties: any mode).

    selected: (sets, sites, 4) unit keys, -1 where a set selected nothing (left out); NaN when none."""
    selected = np.asarray(selected)
    out = np.full(selected.shape[1], np.nan)
    for s in range(selected.shape[1]):
        keys = [tuple(k) for k in selected[:, s] if k[0] >= 0]
        if keys:
            out[s] = Counter(keys).most_common(1)[0][1] / len(keys)
    return out


def select_in_pool(responses: np.ndarray, pool_values: np.ndarray, train_mask: np.ndarray) -> np.ndarray:
    """(sites,) index of each site's best candidate on the training stimuli; -1 when none has an r.

    pool_values (sites, K, stimuli): each site's candidates (NaN rows pad a shorter pool). Ties go to
    the lower candidate index (the pool is in full-data rank order)."""
    responses = np.asarray(responses, dtype=np.float64)
    n_sites, k, n_stim = pool_values.shape
    mask = np.asarray(train_mask, bool)
    r = np.full((n_sites, k), np.nan)
    step = max(1, POOL_CHUNK_VALUES // max(1, k * n_stim))  # bounds the temporaries (~10 arrays of this size)
    for s0 in range(0, n_sites, step):
        s1 = min(n_sites, s0 + step)
        rep = np.repeat(responses[s0:s1], k, axis=0)
        r[s0:s1] = masked_pearson_rows(rep, pool_values[s0:s1].reshape(-1, n_stim), mask).reshape(s1 - s0, k)
    filled = np.where(np.isfinite(r), r, -np.inf)
    best = np.argmax(filled, axis=1)
    return np.where(np.isfinite(filled[np.arange(n_sites), best]), best, -1)


def region_rows(sites: pd.DataFrame, per_site: np.ndarray, metric: str, n_resamples: int, rng_of) -> list[tuple]:
    """(region, metric, median, low, high) per region of a per-site value (sites.idx order)."""
    rows = []
    for region, group in sites.groupby("region", sort=True):
        rows.append((region, metric, *median_interval(per_site[group.index.to_numpy()], n_resamples,
                                                     rng_of(str(region)))))
    return rows


def _site_frame(sites: pd.DataFrame, metric: str, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"site_id": sites["site_id"], "metric": metric, "value": values}).dropna(subset=["value"])


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; NaN where a column has none (no warning)."""
    x = np.asarray(x, dtype=np.float64)
    n = np.isfinite(x).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.nansum(x, axis=0) / np.maximum(n, 1), np.nan)


# ---------------------------------------------------------------------------------------------- analyses
def _selected_values(result, names: list[str]) -> np.ndarray:
    idx = [result.set_index(n) for n in names]
    sel = result.selected[idx]
    return result.values_of(sel.reshape(-1, 4)).reshape(len(idx), sel.shape[1], -1)


def run_heldout_split_half(ctx: AnalysisContext) -> None:
    """scores/site_scores heldout_split_half, site_scores heldout_r and stability_split_half; heldout_ceiled."""
    from precompute.statistics.streaming_pass import ensure_pass

    result = ensure_pass(ctx, full=False)
    if result is None:
        return
    names = [n for n in result.set_names if n.startswith("half")]
    sites = ctx.sites().reset_index(drop=True)
    masks = result.train_masks[[result.set_index(n) for n in names]]
    values = _selected_values(result, names)
    r = heldout_r(ctx.responses(), values, masks)
    per_site = _nanmean_rows(r)
    stability = selection_stability(result.selected[[result.set_index(n) for n in names]])
    ctx.write_site_scores(pd.concat([
        _site_frame(sites, "heldout_split_half", per_site),
        _site_frame(sites, "heldout_r", per_site),
        _site_frame(sites, "stability_split_half", stability),
    ]))
    rows = region_rows(sites, per_site, "heldout_split_half", ctx.n_resamples, lambda g: ctx.rng(g, "split_half"))
    rows += stimulus_interval_rows(sites, per_site, ctx.responses(), values, masks, "heldout_split_half_stimuli",
                                   ctx.n_resamples, ctx.rng("split_half", "stimuli"))
    ctx.write_scores(pd.DataFrame(rows, columns=["region", "metric", "value", "ci_low", "ci_high"]))
    if not ctx.sites()["reliability"].isna().all():
        write_heldout_ceiled(ctx, pd.Series(per_site, index=sites["site_id"]).dropna())


def run_heldout_split_half_pool(ctx: AnalysisContext) -> None:
    """scores/site_scores heldout_split_half_pool: the split-half protocol with each site's unit selected
    within its full-data top-K (the gathered candidates) instead of all units. No model run: seconds, so
    it covers every model; the pool was chosen with all stimuli (the held-out half included), which can
    favour it, so it is reported under its own name, and on models that also have the all-units protocol
    `pool_agreement` (crossval) measures how often the two choices agree."""
    from precompute.statistics.streaming_pass import DEFAULT_HALVES, PAPER_HALVES, half_masks

    masks = np.stack(list(half_masks(ctx, PAPER_HALVES if ctx.protocol == "paper" else DEFAULT_HALVES).values()))
    pool, _keys = _pool(ctx)
    sites = ctx.sites().reset_index(drop=True)
    responses = ctx.responses()
    values = np.full((len(masks), *responses.shape), np.nan)
    for t, mask in enumerate(masks):
        pick = select_in_pool(responses, pool, mask)
        ok = pick >= 0
        values[t, ok] = pool[np.flatnonzero(ok), pick[ok]]
    per_site = _nanmean_rows(heldout_r(responses, values, masks))
    ctx.write_site_scores(_site_frame(sites, "heldout_split_half_pool", per_site))
    rows = region_rows(sites, per_site, "heldout_split_half_pool", ctx.n_resamples,
                       lambda g: ctx.rng(g, "split_half_pool"))
    rows += stimulus_interval_rows(sites, per_site, responses, values, masks, "heldout_split_half_pool_stimuli",
                                   ctx.n_resamples, ctx.rng("split_half_pool", "stimuli"))
    ctx.write_scores(pd.DataFrame(rows, columns=["region", "metric", "value", "ci_low", "ci_high"]))


def _pool(ctx: AnalysisContext) -> tuple[np.ndarray, list[list[tuple[int, int, int, int]]]]:
    """(sites, K, stimuli) activations of each site's full-data top-K candidates (NaN padded) and the keys."""
    return ctx._cached(("crossval_pool",), lambda: _load_pool(ctx))


def _load_pool(ctx: AnalysisContext) -> tuple[np.ndarray, list[list[tuple[int, int, int, int]]]]:
    matches = ctx.matches()
    sites = ctx.sites()
    by_site = {s: g.sort_values("rank") for s, g in matches.groupby("site_id")}
    keys = [list(by_site[s][["layer_idx", "channel", "y", "x"]].astype(int).itertuples(index=False, name=None))
            if s in by_site else [] for s in sites["site_id"]]
    k = max((len(x) for x in keys), default=0)
    table = ctx.activations([u for ks in keys for u in ks])
    out = np.full((len(keys), k, len(ctx.stimulus_ids())), np.nan, dtype=np.float32)
    for i, ks in enumerate(keys):
        for j, u in enumerate(ks):
            if u in table:
                out[i, j] = table[u]
    return out, keys


def run_crossval(ctx: AnalysisContext) -> None:
    """heldout_n2n (+ stability), the selection curve and the candidate pool's agreement with all units."""
    from precompute.statistics.streaming_pass import curve_sets, ensure_pass, n2n_masks

    result = ensure_pass(ctx, full=True)
    if result is None:
        return
    sites = ctx.sites().reset_index(drop=True)
    responses = ctx.responses()
    score_rows: list[tuple] = []
    site_frames = []

    # neuron_to_neuron: exact (paper) or within the full-data top-K pool (default)
    exact = [n for n in result.set_names if n.startswith("n2n")]
    if exact:
        masks = result.train_masks[[result.set_index(n) for n in exact]]
        selected = result.selected[[result.set_index(n) for n in exact]]
        values = _selected_values(result, exact)
        r = heldout_r(responses, values, masks)
    else:
        masks = n2n_masks(ctx)
        pool, keys = _pool(ctx)
        r = np.full((len(masks), len(sites)), np.nan)
        selected = np.full((len(masks), len(sites), 4), -1, np.int64)
        values = np.full((len(masks), *responses.shape), np.nan)
        for t, mask in enumerate(masks):
            pick = select_in_pool(responses, pool, mask)
            ok = pick >= 0
            values[t, ok] = pool[np.flatnonzero(ok), pick[ok]]
            r[t] = masked_pearson_rows(responses, values[t], ~mask)
            for s in np.flatnonzero(ok):
                selected[t, s] = keys[s][pick[s]]
    per_site = _nanmean_rows(r)
    site_frames += [_site_frame(sites, "heldout_n2n", per_site),
                    _site_frame(sites, "stability", selection_stability(selected))]
    score_rows += region_rows(sites, per_site, "heldout_n2n", ctx.n_resamples, lambda g: ctx.rng(g, "n2n"))
    score_rows += stimulus_interval_rows(sites, per_site, responses, values, masks, "heldout_n2n_stimuli",
                                         ctx.n_resamples, ctx.rng("n2n", "stimuli"))
    del values

    # how often the pool's choice is the all-units choice (on the split-half sets, where both are known)
    halves = [n for n in result.set_names if n.startswith("half")]
    if halves and not exact:
        pool, keys = _pool(ctx)
        agree = np.full((len(halves), len(sites)), np.nan)
        for t, name in enumerate(halves):
            i = result.set_index(name)
            pick = select_in_pool(responses, pool, result.train_masks[i])
            for s in range(len(sites)):
                if pick[s] >= 0 and result.selected[i, s, 0] >= 0:
                    agree[t, s] = float(tuple(int(v) for v in result.selected[i, s]) == keys[s][pick[s]])
        for region, group in sites.groupby("region", sort=True):
            vals = agree[:, group.index.to_numpy()]
            score_rows.append((region, "pool_agreement", float(np.nanmean(vals)) if np.isfinite(vals).any()
                               else np.nan, np.nan, np.nan))

    # selection curve (Figure S1)
    curve = []
    for fraction, (name, _) in curve_sets(ctx).items():
        if name not in result.set_names:
            continue
        i = result.set_index(name)
        r_f = heldout_r(responses, _selected_values(result, [name]), result.train_masks[[i]])[0]
        for region, group in sites.groupby("region", sort=True):
            curve.append((region, fraction, *median_interval(r_f[group.index.to_numpy()], ctx.n_resamples,
                                                             ctx.rng(str(region), f"curve{fraction:g}"))))
    ctx.write_site_scores(pd.concat(site_frames))
    ctx.write_scores(pd.DataFrame(score_rows, columns=["region", "metric", "value", "ci_low", "ci_high"]))
    ctx.write_selection_curve(pd.DataFrame(curve, columns=["region", "fraction", "value", "ci_low", "ci_high"]))


register(Analysis(
    "crossval",
    "held-out r under Brain-Score's neuron_to_neuron protocol, match stability, selection curve (Fig. S1)",
    run_crossval,
    default_models="main",
    outputs=(("scores", "heldout_n2n"), ("scores", "heldout_n2n_stimuli"), ("scores", "pool_agreement"),
             ("site_scores", "heldout_n2n"),
             ("site_scores", "stability"), ("selection_curve", "")),
))
register(Analysis(
    "heldout_split_half",
    "held-out r of the unit selected on the other half of the stimuli (split-half); attenuation-corrected",
    run_heldout_split_half,
    default_models="main",
    outputs=(("scores", "heldout_split_half"), ("scores", "heldout_split_half_stimuli"), ("scores", "heldout_ceiled"),
             ("site_scores", "heldout_split_half"),
             ("site_scores", "heldout_r"), ("site_scores", "stability_split_half"),
             ("site_scores", "heldout_ceiled")),
))
register(Analysis(
    "heldout_split_half_pool",
    "split-half held-out r with each site's unit selected within its full-data top-K (seconds; every model)",
    run_heldout_split_half_pool,
    default_models="all",
    outputs=(("scores", "heldout_split_half_pool"), ("scores", "heldout_split_half_pool_stimuli"),
             ("site_scores", "heldout_split_half_pool")),
))
