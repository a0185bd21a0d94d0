"""Unitscope's offline job, `python -m precompute`: layers, each importing only its own and those below.

    core/        foundations: errors, the DuckDB store, step names, the catalog of what is stored, requests
                 built from options, failpoints
    datasets/    imported recordings and the synthetic default (importers, writer, folds, RF mapping protocol)
    models/      models as ONNX with every layer exposed: zoo, user ONNX files, controls, sources
    match/       the exact streaming matching engine and the runs that store its tables
    statistics/  scores, ceilings, intervals, nulls, held-out selection (pure functions + their analyses)
    analyses/    the registry, the context analyses see the database through, and the paper's analyses
    jobs/        orchestration: running analyses, batch files, the demo plan
    cluster/     orchestration on a Dask cluster: tasks, snapshots, workers, ingest
    cli/         the command line

tests/unit/test_import_layers.py fails when a module imports upward or around a cycle; docs/DESIGN.md
("Layout") describes each package.
"""
