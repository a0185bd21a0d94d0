"""Datasets: the synthetic HvM-like default, importers for real formats, and the shared writer.

Modules:
  tables.py          DatasetTables, the in-memory form of one dataset (every generator and importer makes one)
  writer.py          writes a dataset into the working database in one step, then publishes
  folds.py           cross-validation folds, stratified by object
  reliability.py     per-site split-half reliability, computed at import
  rf_mapping.py      the squares-on-a-grid receptive-field mapping protocol and its estimator
  importers/         BrainIO / Brain-Score, the HvM HDF5 release, a plain folder (importers/__init__.py)
  synth.py           `synthetic-hvm`, the embedded default: stimuli, simulated sites, RF mapping
  render.py          the synthetic stimuli: shaded objects placed on 1/f backgrounds
  sprites.py         the eight categories' drawings (8 objects each)
  pen.py             the Pen the drawings use (shapes on a luminance and a mask image), CANON, SUPER
  encoding.py        the hidden ground-truth encoding model: site population, pooled drive, rates, spike counts
  image_features.py  its V4-like image features (Gabor energy, curvature, DoG) and Gaussian pooling weights
"""
