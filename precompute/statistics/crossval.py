"""Cross-validated matching: a site's unit chosen on training stimuli only, scored on stimuli it never saw.

The paper's neural correlation chooses and scores a unit on the same stimuli, which favours models with
more units. Every held-out score here selects over ALL units of the model on training folds only and scores
the selected unit, in float64 from its gathered activations, on the other folds (docs/metrics.md, "What each
score's selection saw"). The training sets are the dataset's folds (stimulus_folds: 10 folds stratified by
object, the same for every model), and the selections come from the matching run itself, which searches
the nested training sets "folds 0 .. t-1" in the same pass (split_matches; precompute/match/checkpoints.py):

- split-half (`heldout_split_half`): chosen on folds 0-4, scored on folds 5-9. Every model.
- neuron_to_neuron (`heldout_n2n`): chosen on folds 0-8 (90%), scored on fold 9 (10%), Brain-Score's
  proportions. With --protocol paper: 10-fold cross-validation, each fold held out once, chosen on the other
  nine over all units (10 training copies of the sites in the statistics pass), averaged over folds per site,
  which is also where `stability` comes from.
- the selection curve (Figure S1): chosen on folds 0 .. t-1 (10%, 20%, ..., 90%), scored on the rest.

Intervals: two-way hierarchical bootstrap, sites by animal/array x stimuli by object (intervals.py); the
`*_stimuli` metrics keep the sites fixed. Nothing is chosen again inside a resample.

Analyses registered here: `heldout_split_half` (+ `heldout_ceiled`, attenuation-corrected) and `crossval`
(n2n, Brain-Score's ceiled n2n score, the selection curve, stability with --protocol paper); both seconds,
every model, no model run by default.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pandas as pd

from precompute.analyses.context import SCORE_COLUMNS, AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.datasets.folds import N2N_TRAIN_FOLDS, N_FOLDS, SPLIT_HALF_TRAIN_FOLDS, TRAIN_FOLDS
from precompute.statistics import intervals
from precompute.statistics.ceiling import attenuation_corrected, brainscore_ceiled_rows
from precompute.statistics.streaming_pass import ensure_pass

log = logging.getLogger(__name__)


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
    return (
        np.stack(
            [
                masked_pearson_rows(responses, selected_values[t], ~np.asarray(train_masks[t], bool))
                for t in range(len(train_masks))
            ]
        )
        if len(train_masks)
        else np.zeros((0, len(responses)))
    )


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


def nanmean_rows(x: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; NaN where a column has none (no warning)."""
    x = np.asarray(x, dtype=np.float64)
    n = np.isfinite(x).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.nansum(x, axis=0) / np.maximum(n, 1), np.nan)


# ---------------------------------------------------------------------------------------------- shared steps
def _split(ctx: AnalysisContext, train_folds: int) -> tuple[np.ndarray, np.ndarray]:
    """(values (sites, stimuli) of each site's unit chosen on folds 0..train_folds-1, training mask)."""
    return ctx.unit_values(ctx.split_units(train_folds)), ctx.folds() < train_folds


def _site_frame(sites: pd.DataFrame, metric: str, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"site_id": sites["site_id"], "metric": metric, "value": values}).dropna(subset=["value"])


def _scores(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


# ---------------------------------------------------------------------------------------------- analyses
def run_heldout_split_half(ctx: AnalysisContext) -> None:
    """scores/site_scores heldout_split_half (+ _stimuli), site_scores heldout_r; heldout_ceiled."""
    sites = ctx.sites().reset_index(drop=True)
    responses = ctx.responses()
    values, train = _split(ctx, SPLIT_HALF_TRAIN_FOLDS)
    per_site = masked_pearson_rows(responses, values, ~train)
    under = intervals.heldout_r_under(responses, values[None], train[None])
    rows = intervals.score_rows(
        ctx, "heldout_split_half", per_site, under, ctx.rng("split_half"), stimuli_metric="heldout_split_half_stimuli"
    )
    frames = [_site_frame(sites, "heldout_split_half", per_site), _site_frame(sites, "heldout_r", per_site)]
    reliability = sites["reliability"].to_numpy(np.float64)
    if np.isfinite(reliability).any():
        scale = attenuation_corrected(np.ones(len(sites)), reliability)
        ceiled = per_site * scale
        rows += intervals.score_rows(
            ctx, "heldout_ceiled", ceiled, intervals.scaled(under, scale), ctx.rng("heldout_ceiled")
        )
        frames.append(_site_frame(sites, "heldout_ceiled", ceiled))
    ctx.write_site_scores(pd.concat(frames))
    ctx.write_scores(_scores(rows))


def run_crossval(ctx: AnalysisContext) -> None:
    """heldout_n2n (+ _stimuli, site_scores; stability with --protocol paper), brainscore_ceiled and the
    selection curve."""
    sites = ctx.sites().reset_index(drop=True)
    responses = ctx.responses()
    frames = []
    if ctx.protocol == "paper":
        result = ensure_pass(ctx)
        if result is None:
            return
        names = [f"n2n{f}" for f in range(N_FOLDS)]
        idx = [result.set_index(n) for n in names]
        masks = result.train_masks[idx]
        values = result.values_of(result.selected[idx].reshape(-1, 4)).reshape(len(idx), len(sites), -1)
        per_site = nanmean_rows(heldout_r(responses, values, masks))
        frames.append(_site_frame(sites, "stability", selection_stability(result.selected[idx])))
    else:
        one, train = _split(ctx, N2N_TRAIN_FOLDS)
        values, masks = one[None], train[None]
        per_site = masked_pearson_rows(responses, one, ~train)
    under = intervals.heldout_r_under(responses, values, masks)
    rows = intervals.score_rows(
        ctx, "heldout_n2n", per_site, under, ctx.rng("n2n"), stimuli_metric="heldout_n2n_stimuli"
    )
    rows += _brainscore_ceiled(ctx, sites, responses, values, masks)
    frames.append(_site_frame(sites, "heldout_n2n", per_site))
    del values

    curve = []
    for t in TRAIN_FOLDS:
        values_t, train_t = _split(ctx, t)
        r_t = masked_pearson_rows(responses, values_t, ~train_t)
        fraction = round(t / N_FOLDS, 6)
        for region, _m, value, lo, hi, scheme in intervals.score_rows(
            ctx, "curve", r_t, intervals.heldout_r_under(responses, values_t[None], train_t[None]), ctx.rng(f"curve{t}")
        ):
            curve.append((region, fraction, value, lo, hi, scheme))
    ctx.write_site_scores(pd.concat(frames))
    ctx.write_scores(_scores(rows))
    ctx.write_selection_curve(
        pd.DataFrame(curve, columns=["region", "fraction", "value", "ci_low", "ci_high", "ci_scheme"])
    )


def _brainscore_ceiled(
    ctx: AnalysisContext, sites: pd.DataFrame, responses: np.ndarray, values: np.ndarray, masks: np.ndarray
) -> list[tuple]:
    """scores brainscore_ceiled per region (ceiling.brainscore_ceiled_rows: Brain-Score's convention)."""
    reliability = sites["reliability"].to_numpy(np.float64)
    if not np.isfinite(reliability).any():
        return []
    per_split = heldout_r(responses, values, masks)  # (splits, sites)
    regions = sorted(sites["region"].unique())
    keep = np.isfinite(per_split).any(axis=0) & np.isfinite(reliability)
    groups = [np.flatnonzero((sites["region"] == g).to_numpy() & keep) for g in regions]
    return brainscore_ceiled_rows(
        per_split,
        intervals.per_set_r_under(responses, values, masks),
        reliability,
        regions,
        groups,
        [ctx.site_clusters(g) for g in groups],
        ctx.stimulus_clusters(),
        ctx.n_resamples,
        ctx.rng("brainscore_ceiled"),
    )


register(
    Analysis(
        "heldout_split_half",
        "held-out r of the unit chosen (over all units) on folds 0-4, scored on folds 5-9; attenuation-corrected",
        run_heldout_split_half,
        default_models="all",
        outputs=(
            ("scores", "heldout_split_half"),
            ("scores", "heldout_split_half_stimuli"),
            ("scores", "heldout_ceiled"),
            ("site_scores", "heldout_split_half"),
            ("site_scores", "heldout_r"),
            ("site_scores", "heldout_ceiled"),
        ),
    )
)
register(
    Analysis(
        "crossval",
        "held-out r under Brain-Score's neuron_to_neuron proportions (90/10), its ceiled score, the selection "
        "curve (Fig. S1)",
        run_crossval,
        default_models="all",
        outputs=(
            ("scores", "heldout_n2n"),
            ("scores", "heldout_n2n_stimuli"),
            ("scores", "brainscore_ceiled"),
            ("site_scores", "heldout_n2n"),
            ("site_scores", "stability"),
            ("selection_curve", ""),
        ),
    )
)
