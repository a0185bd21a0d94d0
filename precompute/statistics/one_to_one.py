"""One-to-one assignment of sites to units: the paper lets many sites match the same unit; here each unit
serves at most one site.

Per region, the candidates are the union of the region's sites' top-K units (matches, all ranks); the
r of every site x candidate pair is recomputed exactly (float64) from the trial-averaged responses and
the gathered activations, and scipy's `linear_sum_assignment` picks the assignment that maximises the
sum of r (the Hungarian problem). Analysis `one_to_one`: scores `one_to_one` (median over sites of the
assigned r, with a bootstrap interval over sites) and `shared_best_units` (how many sites share their
best unit with another site of the region); site_scores `one_to_one` (the assigned r) and
`one_to_one_rank` (the assigned unit's rank among the site's candidates; 1 = it kept its best unit).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.statistics.correlation import complete_stimuli, pearson_all
from precompute.statistics.resample import site_interval

log = logging.getLogger(__name__)

#: stands in for NaN r (a constant unit) so the solver never picks such a pair over a real one
_NO_PAIR = -2.0


def one_to_one_assignment(r: np.ndarray) -> np.ndarray:
    """Column assigned to each row of an (sites, units) r matrix, maximising the total r; -1 when none.

    Each unit is assigned to at most one site. A site gets no unit when there are fewer units than
    sites or when only NaN pairs are left for it."""
    from scipy.optimize import linear_sum_assignment

    r = np.asarray(r, dtype=np.float64)
    out = np.full(r.shape[0], -1, dtype=np.int64)
    if r.size == 0:
        return out
    filled = np.where(np.isfinite(r), r, _NO_PAIR)
    rows, cols = linear_sum_assignment(filled, maximize=True)
    valid = np.isfinite(r[rows, cols])
    out[rows[valid]] = cols[valid]
    return out


def shared_best_count(best_units: Sequence[Hashable]) -> int:
    """How many sites have a best unit that is also another site's best unit (None = no best unit)."""
    counts = Counter(u for u in best_units if u is not None)
    return int(sum(n for n in counts.values() if n > 1))


def rank_within_rows(r: np.ndarray, assigned: np.ndarray) -> np.ndarray:
    """1-based rank of each row's assigned column among that row's r (1 = its highest); NaN if unassigned."""
    out = np.full(r.shape[0], np.nan)
    for i, j in enumerate(assigned):
        if j >= 0:
            row = np.where(np.isfinite(r[i]), r[i], -np.inf)
            out[i] = 1 + int((row > row[j]).sum())
    return out


def run_one_to_one(ctx: AnalysisContext) -> None:
    """Hungarian assignment per region over the union of its sites' top-K units."""
    sites = ctx.sites()
    matches = ctx.matches().merge(sites[["site_id", "region"]], on="site_id")
    responses = ctx.responses()
    site_rows, score_rows = [], []
    for region, group in sites.groupby("region", sort=True):
        region_matches = matches[matches["region"] == region]
        best = region_matches[region_matches["rank"] == 1]
        unit_of = dict(
            zip(
                best["site_id"],
                best[["layer_idx", "channel", "y", "x"]].astype(int).itertuples(index=False, name=None),
                strict=True,
            )
        )
        best_units = [unit_of.get(s) for s in group["site_id"]]
        score_rows.append((region, "shared_best_units", float(shared_best_count(best_units)), np.nan, np.nan, None))
        candidates = sorted(
            set(region_matches[["layer_idx", "channel", "y", "x"]].astype(int).itertuples(index=False, name=None))
        )
        stored = ctx.activations(candidates)
        if len(stored) < len(candidates):
            log.warning(
                "%s %s: %d of %d candidate units are not in unit_activations; left out",
                ctx.model,
                region,
                len(candidates) - len(stored),
                len(candidates),
            )
            candidates = [u for u in candidates if u in stored]
        if not candidates:
            continue
        resp = responses[group["idx"].to_numpy(int)]
        cols = complete_stimuli(resp)
        r = pearson_all(resp[:, cols], ctx.activation_matrix(candidates)[:, cols])
        assigned = one_to_one_assignment(r)
        ok = assigned >= 0
        assigned_r = np.where(ok, r[np.arange(len(assigned)), np.maximum(assigned, 0)], np.nan)
        ranks = rank_within_rows(r, assigned)
        for site_id, value, rank in zip(group["site_id"], assigned_r, ranks, strict=True):
            if np.isfinite(value):
                site_rows += [(site_id, "one_to_one", value), (site_id, "one_to_one_rank", rank)]
        score_rows.append(
            (
                region,
                "one_to_one",
                *site_interval(assigned_r, ctx.site_clusters(group.index.to_numpy()), ctx.n_resamples, ctx.rng(region)),
            )
        )
        log.info(
            "%s %s: one-to-one over %d sites x %d units, median r %.3f",
            ctx.model,
            region,
            len(group),
            len(candidates),
            np.nanmedian(assigned_r) if ok.any() else np.nan,
        )
    ctx.write_site_scores(pd.DataFrame(site_rows, columns=["site_id", "metric", "value"]))
    ctx.write_scores(score_rows)


register(
    Analysis(
        "one_to_one",
        "Hungarian one-to-one assignment of sites to their top-K units; how many sites share a best unit",
        run_one_to_one,
        default_models="all",  # seconds per model: every demo model
        outputs=(
            ("scores", "one_to_one"),
            ("scores", "shared_best_units"),
            ("site_scores", "one_to_one"),
            ("site_scores", "one_to_one_rank"),
        ),
    )
)
