"""Matching: for every row (site, or any response vector), the units whose responses correlate best.

Modules, in dependency order (a module imports only modules listed above it; image feeds are
precompute/core/feeds.py):
  plan.py         split the units into passes that fit the memory budget
  topk.py         exact, deterministic top-k (ties: lower layer_idx, then lower flat index)
  blas.py         OpenBLAS sgemm on strided views: the CPU product step
  rows.py         RowSet: the rows (response vectors with per-group stimulus weights), standardised
  results.py      MatchResult, what the engine found; unit coordinates
  schedule.py     the order in which the stimuli are processed, cut into product steps
  inference.py    running a model over a feed: a batch into given arrays; chosen units over all stimuli
  state.py        PassState (everything one pass reads) and Best (the answer the passes build up)
  accumulate.py   one inference pass: stage, shift and square the activations, multiply into the accumulator
  checkpoints.py  nested training sets searched in the pass itself (each row's units per training set)
  search.py       r from the accumulator into the per-layer top-k; ill-conditioned pairs redone exactly
  engine.py       match_units, the streaming correlation (rows x stimuli) @ (stimuli x units): the driver
  inputs.py       a dataset as the engine needs it, read from the working database
  gather.py       the gather pass: activations of chosen units over all stimuli (unit_activations)
  runner.py       one (dataset, model) pair: load from the database, run, write the tables in one step
  batch.py        TOML batch files (datasets x models)
  cli.py          `python -m precompute run | batch`
  demo.py         the demo's matching steps
"""
