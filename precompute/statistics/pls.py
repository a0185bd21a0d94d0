"""Brain-Score's linear predictivity (Figure S4), for comparison with the single-unit metric.

A layer's activations for all stimuli are first reduced to `projection_dim` (1,000) features by a very
sparse random projection computed in the statistics pass (streaming_pass.py): Lite0's layers have up to
~1.2 M units, too many to hold for 2,560 stimuli or to regress on. Then, as Brain-Score's
`pls_regression`: scikit-learn's PLSRegression(25 components, scale=False; as many as the features'
rank when that is lower) fits all of a region's sites at once on 90% of the stimuli and predicts the
other 10%, over 10 splits stratified by object (the same splits as the neuron_to_neuron protocol); per
site, the Pearson r between prediction and response on the held-out stimuli, averaged over splits
(`pls_r`); per region, the median over sites (`pls_predictivity`, bootstrap interval over sites).

By default only each region's best layer (its "V4-like" / "IT-like" layer, as `layer_scores` picks it)
is fitted; --protocol paper fits every layer (layer_scores `pls_predictivity`), with scores and
site_scores still for the best layer.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.datasets.folds import fold_out_masks
from precompute.statistics.crossval import masked_pearson_rows
from precompute.statistics.resample import site_interval
from precompute.statistics.streaming_pass import best_layers, ensure_pass

log = logging.getLogger(__name__)

N_COMPONENTS = 25


def pls_heldout_r(
    features: np.ndarray, targets: np.ndarray, train_masks: np.ndarray, n_components: int = N_COMPONENTS
) -> np.ndarray:
    """(splits, targets) Pearson r on each split's held-out stimuli (the complement of its training mask)
    of a PLSRegression(n_components, scale=False) fitted on its training stimuli.

    features (stimuli, features), targets (stimuli, targets): complete (no NaN)."""
    from sklearn.cross_decomposition import PLSRegression

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    out = np.full((len(train_masks), y.shape[1]), np.nan)
    # NIPALS extracts components from what the earlier ones leave of the features: past their rank only
    # round-off is left, so the fit would be noise (or NaN). A layer with few live units has a low rank.
    rank = int(np.linalg.matrix_rank(x - x.mean(axis=0)))
    if rank == 0:
        log.warning("PLS: the features are constant over the stimuli; nothing to fit")
        return out
    if rank < n_components:
        log.info("PLS: the features have rank %d < %d components; fitting %d", rank, n_components, rank)
    for t, mask in enumerate(np.asarray(train_masks, dtype=bool)):
        k = max(1, min(n_components, rank, x.shape[1], int(mask.sum()) - 1))
        pred = _fit_predict(PLSRegression, x[mask], y[mask], x[~mask], k)
        if pred is not None:
            out[t] = masked_pearson_rows(pred.reshape(-1, y.shape[1]).T, y[~mask].T, np.ones(int((~mask).sum()), bool))
    return out


def _fit_predict(pls_class, x_train, y_train, x_test, k: int) -> np.ndarray | None:
    """PLS predictions on x_test, or None when no fit is possible.

    A training subset can have a lower rank than all the stimuli (rare: a unit live on the held-out stimuli
    only); scikit-learn then fails on NaN, and the fit is redone with as many components as that rank."""
    try:
        with np.errstate(all="ignore"):
            model = pls_class(n_components=k, scale=False).fit(x_train, y_train)
    except ValueError:
        model = None
    if model is None or not np.all(np.isfinite(model.coef_)):
        rank = int(np.linalg.matrix_rank(x_train - x_train.mean(axis=0)))
        if rank == 0 or rank >= k:
            log.warning("PLS: no fit with %d component(s) on training features of rank %d; split left out", k, rank)
            return None
        return _fit_predict(pls_class, x_train, y_train, x_test, rank)
    return model.predict(x_test)


def _mean_over_splits(r: np.ndarray) -> np.ndarray:
    n = np.isfinite(r).sum(axis=0)
    return np.where(n > 0, np.nansum(r, axis=0) / np.maximum(n, 1), np.nan)


def run_pls(ctx: AnalysisContext) -> None:
    """scores pls_predictivity and site_scores pls_r for each region's best layer (paper: layer_scores too)."""

    result = ensure_pass(ctx)
    if result is None:
        return
    best = best_layers(ctx)
    sites = ctx.sites().reset_index(drop=True)
    responses = ctx.responses()
    masks = fold_out_masks(ctx.folds())
    score_rows, layer_rows, site_frames = [], [], []
    for region, group in sites.groupby("region", sort=True):
        if str(region) not in best:
            continue
        y = responses[group.index.to_numpy()].T  # (stimuli, sites)
        complete = np.isfinite(y).all(axis=1)
        if not complete.all():
            log.info(
                "%s: %d stimuli without a response from every site are left out of PLS", region, int((~complete).sum())
            )
        layers = sorted(result.projections) if ctx.protocol == "paper" else [best[str(region)]]
        for layer in layers:
            if layer not in result.projections:
                log.warning("no projection of layer %d in the statistics pass; PLS skipped for it", layer)
                continue
            t0 = time.perf_counter()
            r = pls_heldout_r(result.projections[layer][complete], y[complete], masks[:, complete])
            per_site = _mean_over_splits(r)
            log.info(
                "%s %s layer %d: PLS median r %.3f (%d fits in %.1f s)",
                ctx.model,
                region,
                layer,
                float(np.nanmedian(per_site)),
                len(masks),
                time.perf_counter() - t0,
            )
            med = site_interval(
                per_site,
                ctx.site_clusters(group.index.to_numpy()),
                ctx.n_resamples,
                ctx.rng(str(region), f"pls{layer}"),
            )
            if ctx.protocol == "paper":
                layer_rows.append((region, layer, "pls_predictivity", *med))
            if layer == best[str(region)]:
                score_rows.append((region, "pls_predictivity", *med))
                site_frames.append(
                    pd.DataFrame({"site_id": group["site_id"].to_numpy(), "metric": "pls_r", "value": per_site}).dropna(
                        subset=["value"]
                    )
                )
    ctx.write_scores(score_rows)
    if site_frames:
        ctx.write_site_scores(pd.concat(site_frames))
    if layer_rows:
        ctx.write_layer_scores(
            pd.DataFrame(
                layer_rows, columns=["region", "layer_idx", "metric", "value", "ci_low", "ci_high", "ci_scheme"]
            )
        )


register(
    Analysis(
        "pls",
        "Brain-Score's linear predictivity (PLS, 25 components, 10 x 90/10) of the best layer per region (Fig. S4)",
        run_pls,
        default_models="main",
        outputs=(("scores", "pls_predictivity"), ("site_scores", "pls_r"), ("layer_scores", "pls_predictivity")),
    )
)
