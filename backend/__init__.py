"""Read side of Unitscope: configuration, the DuckDB schema, named queries and caching.

Nothing here imports dash, torch or onnxruntime, so precompute and notebooks can use it too.
"""
