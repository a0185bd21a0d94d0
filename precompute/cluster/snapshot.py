"""What a task reads, handed from the coordinator to a worker as Parquet files (workers never open the
working database).

A snapshot has two parts: the dataset's own tables (stimuli, images, responses, ...), written once per
dataset and reused by every task on it, and the task's part (the scope's match and result tables, plus
the small tables without a dataset: build_info, models, layers). The worker loads both into a private
DuckDB file with the project's schema and runs the step against it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from backend import schema
from precompute.cluster import results
from precompute.cluster.tasks import scope_filter, snapshot_filter
from precompute.core.failpoints import failpoint

log = logging.getLogger(__name__)


def _dataset_tables() -> list[schema.Table]:
    return [t for t in schema.TABLES if "dataset" in t.column_names and scope_filter(t, "", ["x"]) is None]


def _task_tables() -> list[schema.Table]:
    dataset_only = {t.name for t in _dataset_tables()}
    return [t for t in schema.TABLES if t.name not in dataset_only]


def _write(con, folder: Path, tables: list[schema.Table], scope: tuple[str, Sequence[str]], **fields) -> None:
    dataset, models = scope
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for table in tables:
        where, params = snapshot_filter(table, dataset, models)
        if not con.execute(
            f'SELECT count(*) FROM (SELECT 1 FROM "{table.name}" WHERE {where} LIMIT 1)', params
        ).fetchone()[0]:
            continue  # nothing to hand over (the worker's private file has the table, empty)
        cols = ", ".join(f'"{c}"' for c in table.column_names)
        name = f"{table.name}.parquet"
        results.write_query_parquet(con, f'SELECT {cols} FROM "{table.name}" WHERE {where}', params, folder / name)
        files.append(name)
        if len(files) == 1:
            failpoint("snapshot.mid_write")
    results.write_manifest(folder, files, **fields)


def write_snapshot(
    con, results_dir: Path, dataset: str, models: Sequence[str], dataset_key: str, task_slug: str, input_hash: str
) -> list[str]:
    """Write (or reuse) the dataset part and write the task part; return both folders relative to results_dir."""
    root = Path(results_dir) / "snapshots"
    ds_folder = root / f"dataset-{dataset_key}"
    if results.read_complete(ds_folder, dataset=dataset, key=dataset_key) is None:
        _write(con, ds_folder, _dataset_tables(), (dataset, models), dataset=dataset, key=dataset_key)
    task_folder = root / f"task-{task_slug}-{input_hash[:16]}"
    _write(
        con, task_folder, _task_tables(), (dataset, models), dataset=dataset, models=list(models), input_hash=input_hash
    )
    return [str(ds_folder.relative_to(results_dir)), str(task_folder.relative_to(results_dir))]


def load_snapshot(con, results_dir: Path, folders: Sequence[str]) -> None:
    """Fill an empty database (schema created) from snapshot folders; a folder without its manifest is an error."""
    for rel in folders:
        folder = Path(results_dir) / rel
        manifest = results.read_complete(folder)
        if manifest is None:
            raise RuntimeError(
                f"snapshot {folder} is missing or incomplete (is the results folder shared "
                "with this worker at the same path, or set UNITSCOPE_WORKER_RESULTS?)"
            )
        for name in manifest["files"]:
            table = schema.TABLES_BY_NAME[name.removesuffix(".parquet")]
            cols = ", ".join(f'"{c}"' for c in table.column_names)
            if table.name == "build_info":  # the schema's keys exist already in a fresh file
                con.execute("DELETE FROM build_info")
            con.execute(f'INSERT INTO "{table.name}" ({cols}) SELECT {cols} FROM read_parquet(?)', [str(folder / name)])
