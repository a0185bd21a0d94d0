"""The analyses layer: the registry, the context analyses see the database through, and the paper's analyses
around the matches (issue 7), each registered with `python -m precompute analyze`.

Modules (an analysis's module is named as in `analyze --only NAME`; docs/analyses.md says what each computes
and costs):
  registry.py          every analysis by name, in run order (ANALYSIS_MODULES)
  context.py           `AnalysisContext`: an analysis's only way to the database (loaders, the model to run)
  context_tables.py    the context's writers: result tables and each analysis's own table (with context.py,
                       the only SQL of precompute/analyses and precompute/statistics)
  common.py            shared helpers: seeds, notes on what was left out, controls, opening a model
  runnerups.py         `runnerups`: top-K r per site and the gap to the best (Figures 7, S10)
  featuremaps.py       `featuremaps`: sites per feature map / x / y of a layer (Figures 8, S11, S13)
  rotations.py         `rotations`: Haar-random rotations of the feature basis of the V4-/IT-like layer (Figure 9)
  rotation_stats.py    its streaming per-position statistics (one inference pass, no inference per rotation)
  decoding.py          `decoding`: linear-SVM category decoding, conditions (i)-(iii) (Figures 5, S5, S6)
  decoders.py          its pure decoders: protocols, cached fits, splits, conditions, shared neural decoders
  receptive_fields.py  `receptive_fields`: in-silico mapping and gradient receptive fields (Figure S2); also
                       what `python -m precompute rf` (precompute/cli/rf.py) computes for requested units
  rf_gradient.py       its gradient method: torch networks rebuilt from the zoo, input gradients, pixel fields
"""
