"""Unitscope's offline precompute job: `python -m precompute --help`.

Imports datasets, prepares models as ONNX, matches every site to its best units, runs the analyses
and writes everything into one DuckDB file (see backend/schema.py). Never imports dash.
"""
