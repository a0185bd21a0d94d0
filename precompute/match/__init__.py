"""Matching: for every row (site, or any response vector), the units whose responses correlate best.

Modules, in pipeline order:
  plan.py     split the units into passes that fit the memory budget
  topk.py     exact, deterministic top-k (ties: lower layer_idx, then lower flat index)
  engine.py   the streaming correlation (rows x stimuli) @ (stimuli x units), accumulated over stimuli
  gather.py   the gather pass: activations of chosen units over all stimuli (unit_activations)
  runner.py   one (dataset, model) pair: load from the database, run, write the tables in one step
  batch.py    TOML batch files (datasets x models)
  cli.py      `python -m precompute run | batch`
  demo.py     the demo's matching steps
"""
