"""The seed paper's analyses around the matches (issue 7), each registered with `python -m precompute analyze`.

Modules (one per analysis, named as in `analyze --only NAME`; docs/analyses.md says what each computes
and costs):
  runnerups.py         `runnerups`: top-K r per site and the gap to the best (Figures 7, S10)
  featuremaps.py       `featuremaps`: sites per feature map / x / y of a layer (Figures 8, S11, S13)
  rotations.py         `rotations`: Haar-random rotations of the feature basis of the V4-/IT-like layer (Figure 9)
  decoding.py          `decoding`: linear-SVM category decoding, conditions (i)-(iii) (Figures 5, S5, S6)
  receptive_fields.py  `receptive_fields`: gradient and in-silico mapping receptive fields (Figure S2)
  common.py            shared helpers: the region's best layer, writing an owned table, opening a model
  cli.py               `python -m precompute rf --dataset D --model M --unit LAYER_IDX,C,Y,X`
"""
