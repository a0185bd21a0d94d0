"""Statistics on the match tables (issue 6): one module per statistic family.

Each module holds pure functions (numpy in, numpy out, tested against brute-force references) and,
at its bottom, the named analyses that apply them to one (dataset, model) and write `scores`,
`layer_scores`, `site_scores` or `model_comparisons` (registered in precompute/analyses/registry.py).

    resample     bootstrap machinery: percentile intervals, resampling sites and stimuli
    correlation  exact float64 Pearson r (row-wise, all pairs, stimulus-bootstrap sums)
    scores       the paper's neural correlation: whole model, per layer, best layer (Figure S8)
    ceiling      noise ceilings: Brain-Score's consistency, correction for attenuation, low-reliability flags
    one_to_one   Hungarian one-to-one assignment of sites to units
    depth        normalised depth of each site's best unit (Figure S7)
    comparisons  paired comparison of two models over the same sites (Wilcoxon signed-rank)
    splits, streaming_pass
                 stratified splits; the one statistics pass (training copies, permuted copies, projections)
    projection   the pass's very sparse random projections and the tap that applies them (PLS)
    pass_cache   the pass's disk cache: one .npz per pass under cache/stats/, only a pair's latest kept
    null, pls    the null for the maximum (permutations, BH); Brain-Score's PLS linear predictivity
    crossval     held-out r (split-half, neuron_to_neuron), stability, selection curve, stimulus intervals
    cross_dataset
                 select on one dataset, evaluate on another that shares site ids (--select-on)

The definitions and the reasons for each formula are in docs/metrics.md.
"""
