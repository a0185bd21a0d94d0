"""Select on one dataset, evaluate on another: each site's best unit on dataset A, its r on dataset B.

Where two datasets share site ids (e.g. two stimulus sets recorded at the same sites), the strictest
held-out test of a site's best unit is a new stimulus set: the unit is chosen on A's stimuli (the
site's rank-1 match on A, `matches`) and scored on B's (its r with B's trial-averaged responses,
float64), so neither the selection's optimism nor A's particular images inflate it.

The selected units' activations on B's stimuli come from B's gathered activations where the unit is
already stored (B matched with the same model) and otherwise are gathered now (one inference pass over
B's stimuli for just those units, stored in `unit_activations` with reason 'requested').

Analysis registered here: `cross_dataset`, run as
`python -m precompute analyze --dataset B --select-on A --model M --only cross_dataset`
(step `analyze:cross_dataset@A:B:M`); see docs/metrics.md for the metrics it writes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.core.errors import UserError
from precompute.statistics import intervals
from precompute.statistics.crossval import masked_pearson_rows
from precompute.statistics.streaming_pass import open_model_source

log = logging.getLogger(__name__)

UNIT = ["layer_idx", "channel", "y", "x"]


# ---------------------------------------------------------------------------------------------- pure functions
def shared_site_ids(select_sites: Sequence[str], eval_sites: Sequence[str]) -> list[str]:
    """Site ids present in both datasets, in the evaluation dataset's order."""
    chosen = set(map(str, select_sites))
    return [s for s in map(str, eval_sites) if s in chosen]


def cross_dataset_r(responses: np.ndarray, unit_values: np.ndarray) -> np.ndarray:
    """(sites,) r of each site's responses on the evaluation stimuli with its selected unit's activations
    there (row i with row i), over the stimuli where both are finite; NaN for a row without a unit (NaN
    row), with fewer than 3 stimuli, or constant."""
    return masked_pearson_rows(responses, unit_values, np.ones(np.shape(responses)[1], dtype=bool))


# ---------------------------------------------------------------------------------------------- analysis
def _metric(base: str, select_on: str) -> str:
    return f"{base}@{select_on}"


def _unit_values(ctx: AnalysisContext, units: list[tuple[int, int, int, int]]) -> dict:
    """Activations on ctx.dataset's stimuli of `units`: stored ones, the others gathered now (when the model
    can be run)."""
    stored = ctx.activations(units)
    missing = [u for u in dict.fromkeys(units) if u not in stored]
    if missing:
        source = open_model_source(ctx)
        if source is None:
            log.warning(
                "%s has no activation source: %d selected units have no activations on %s and their sites are left out",
                ctx.model,
                len(missing),
                ctx.dataset,
            )
            return stored
        try:
            added = ctx.request_activations(missing, source=source)
        finally:
            source.close()
        log.info(
            "%s: gathered %d selected units on %s (%d were stored)",
            ctx.model,
            added,
            ctx.dataset,
            len(set(units)) - len(missing),
        )
        stored = ctx.activations(units)
    return stored


def run_cross_dataset(ctx: AnalysisContext) -> None:
    """site_scores / scores `cross_dataset@A` (intervals over sites), scores `cross_dataset_stimuli@A`
    (interval over B's stimuli), `cross_dataset_sites@A` and, when the model is matched on B too,
    `cross_dataset_same_unit@A`."""
    select_on = ctx.options["select_on"]
    sites_b = ctx.sites().reset_index(drop=True)
    best_a = _selected_on(ctx, ctx.for_dataset(select_on), sites_b)
    units = list(best_a[UNIT].astype(int).itertuples(index=False, name=None))
    table = _unit_values(ctx, units)
    have = np.array([u in table for u in units], dtype=bool)
    best_a = best_a[have]
    units = [u for u, h in zip(units, have, strict=True) if h]
    pos = pd.Series(sites_b.index.to_numpy(), index=sites_b["site_id"])
    rows_b = pos.loc[best_a.index].to_numpy(int)
    responses = ctx.responses()[rows_b]
    values = ctx.activation_matrix(units).astype(np.float64) if units else np.zeros((0, responses.shape[1]))
    r = cross_dataset_r(responses, values)
    metric = _metric("cross_dataset", select_on)
    ctx.write_site_scores(
        pd.DataFrame({"site_id": best_a.index, "metric": metric, "value": r}).dropna(subset=["value"])
    )
    same_unit = _same_unit(ctx, best_a) if ctx.is_matched() else None

    # every median over the region's shared sites, two-way interval (sites by cluster x B's stimuli by object)
    all_responses = ctx.responses()
    per_site = np.full(len(sites_b), np.nan)
    per_site[rows_b] = r
    full_values = np.full(all_responses.shape, np.nan)
    full_values[rows_b] = values
    score_rows = intervals.score_rows(
        ctx,
        metric,
        per_site,
        intervals.fixed_unit_r(all_responses, full_values),
        ctx.rng("cross_dataset"),
        stimuli_metric=_metric("cross_dataset_stimuli", select_on),
    )
    regions = sites_b.set_index("site_id").loc[best_a.index, "region"].to_numpy()
    score_rows += _count_rows(select_on, regions, r, same_unit)
    ctx.write_scores(score_rows)
    log.info(
        "%s: %d sites selected on %s and scored on %s", ctx.model, int(np.isfinite(r).sum()), select_on, ctx.dataset
    )


def _selected_on(ctx: AnalysisContext, ctx_a: AnalysisContext, sites_b: pd.DataFrame) -> pd.DataFrame:
    """The rank-1 matches on dataset A (`ctx_a`) of the sites both datasets have (B's order, by site_id),
    those without a match on A left out; a UserError when the datasets share no site."""
    select_on = ctx_a.dataset
    shared = shared_site_ids(ctx_a.sites()["site_id"], sites_b["site_id"])
    if not shared:
        raise UserError(
            f"datasets {select_on!r} and {ctx.dataset!r} share no site ids, so no site can be selected "
            f"on one and evaluated on the other (e.g. {select_on!r} has "
            f"{ctx_a.sites()['site_id'].iloc[0]!r}, {ctx.dataset!r} has {sites_b['site_id'].iloc[0]!r})"
        )
    best_a = ctx_a.best_matches().set_index("site_id").loc[shared]
    best_a = best_a[best_a["r"].notna()]
    if len(best_a) < len(shared):
        log.warning(
            "%d of %d shared sites have no match on %s: left out", len(shared) - len(best_a), len(shared), select_on
        )
    return best_a


def _same_unit(ctx: AnalysisContext, best_a: pd.DataFrame) -> np.ndarray:
    """Per selected site (best_a's rows): 1 when its best unit on B (the model is matched there) is the unit
    selected on A, 0 when not, NaN without a match on B."""
    best_b = ctx.best_matches().set_index("site_id").loc[best_a.index]
    same_unit = (best_b[UNIT].to_numpy(float) == best_a[UNIT].to_numpy(float)).all(axis=1).astype(float)
    same_unit[best_b["r"].isna().to_numpy()] = np.nan
    return same_unit


def _count_rows(select_on: str, regions: np.ndarray, r: np.ndarray, same_unit: np.ndarray | None) -> list[tuple]:
    """Per region: `cross_dataset_sites@A` (sites scored) and `cross_dataset_same_unit@A` (the fraction of
    sites whose unit is the same on both datasets, where that is known)."""
    rows = []
    for region in sorted(set(regions)):
        sel = regions == region
        ok = sel & np.isfinite(r)
        rows.append((region, _metric("cross_dataset_sites", select_on), float(ok.sum()), np.nan, np.nan, None))
        if same_unit is not None and np.isfinite(same_unit[sel]).any():
            value = float(np.nanmean(same_unit[sel]))
            rows.append((region, _metric("cross_dataset_same_unit", select_on), value, np.nan, np.nan, None))
    return rows


register(
    Analysis(
        "cross_dataset",
        "each site's best unit on --select-on dataset A, its r on --dataset B (sites shared by id)",
        run_cross_dataset,
        requires_matching=False,
        default_models="main",
        outputs=(
            ("site_scores", "cross_dataset@{select_on}"),
            ("scores", "cross_dataset@{select_on}"),
            ("scores", "cross_dataset_stimuli@{select_on}"),
            ("scores", "cross_dataset_sites@{select_on}"),
            ("scores", "cross_dataset_same_unit@{select_on}"),
        ),
        dataset_options=("select_on",),
    )
)
