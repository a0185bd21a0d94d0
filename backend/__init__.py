"""Read side of Unitscope: configuration, the DuckDB schema, named queries and caching.

Nothing here imports dash, flask routes, torch or onnxruntime, so precompute and notebooks can use it too.

Modules:
    config    Settings: every configurable value, from the environment (.env.sample)
    db        the served DuckDB file, read-only: one connection per thread, reopened on a new build
    schema/   every table and column (the single source of truth; precompute writes with it)
    queries   every SQL statement the app and the notebook API run, named, with bound parameters
    cache     the server-side cache, keyed by build id
    catalog   what the build holds (datasets, sites, models, layers) and the dataset check
    params    URL-parameter checks and their defaults (dataset, model, region, site, choices, numbers, units)
    data      one cached function per figure or table (re-exports catalog)
    commands  the precompute commands the dashboard tells people to run
    errors    NotFoundError and NotComputedError (what pages turn into empty states)
    auth      the access-control checks (basic auth, bearer token); routes.py installs them
    api       a small Python API for notebooks
"""
