"""Paired comparison of two models over the same sites: does model A beat model B?

For every pair of models matched on the dataset and every region, over the sites both have a best match
for: `difference` = median over sites of (r_A - r_B) (the median of paired differences, which is what the
Wilcoxon signed-rank test is about; the difference of the two medians can disagree in sign with it), and
`p_value` = two-sided Wilcoxon signed-rank p (scipy; exact for small samples without ties, normal
approximation otherwise). Metric `neural_correlation` (each site's rank-1 r). Analysis
`model_comparison`, run once per dataset over all matched models (step `analyze:model_comparison:<dataset>`).
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd

from precompute.analyze import Analysis, AnalysisContext, register

log = logging.getLogger(__name__)


def paired_comparison(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(median of a - b, two-sided Wilcoxon signed-rank p) over pairs where both are finite.

    p is 1.0 when every difference is zero (nothing to tell the models apart) and NaN without pairs."""
    from scipy.stats import wilcoxon

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    if d.size == 0:
        return float("nan"), float("nan")
    if np.all(d == 0):
        return 0.0, 1.0
    return float(np.median(d)), float(wilcoxon(d, alternative="two-sided").pvalue)


def run_model_comparison(ctx: AnalysisContext) -> None:
    sites = ctx.sites()[["site_id", "region"]]
    best = {m: ctx.matches(rank=1, model=m).set_index("site_id")["r"] for m in ctx.models}
    rows = []
    for model_a, model_b in itertools.combinations(ctx.models, 2):
        for region, group in sites.groupby("region", sort=True):
            ids = group["site_id"]
            diff, p = paired_comparison(best[model_a].reindex(ids).to_numpy(), best[model_b].reindex(ids).to_numpy())
            if np.isfinite(diff):
                rows.append((region, model_a, model_b, "neural_correlation", diff, p))
    if not rows:
        log.info("%s: fewer than two matched models, nothing to compare", ctx.dataset)
    ctx.write_model_comparisons(pd.DataFrame(rows, columns=["region", "model_a", "model_b", "metric", "difference",
                                                            "p_value"]))


register(Analysis(
    "model_comparison",
    "paired comparison of every two matched models over the same sites (median difference, Wilcoxon p)",
    run_model_comparison,
    default_models="all",
    cross_model=True,
    outputs=(("model_comparisons", "neural_correlation"),),
))
