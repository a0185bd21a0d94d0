"""Precompute on a Dask cluster: a batch's units of work as tasks, run by a `local` or a `dask` executor.

tasks.py     the task graph (matching runs and analyses with their dependencies), scopes and input hashes
snapshot.py  what a task reads, written by the coordinator as Parquet for the worker (workers never open
             the working database)
worker.py    runs one task on a worker against a private DuckDB file and writes its result file
results.py   result files: atomic writes, a manifest written last marks a result complete
ingest.py    the coordinator ingests one finished task in one Store.step transaction and publishes
executor.py  `local` (in-process, the batch's historical behaviour) and `dask` (distributed.Client)
report.py    what a run reports: each task's outcome, the batch's summary, progress lines with an ETA

docs/cluster.md says how to run it on a lab server or a SLURM cluster.
"""
