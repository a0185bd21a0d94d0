"""Run one task on a worker: private DuckDB file from the snapshot, the step's own code, a result file.

The step runs unchanged (`run_pair`, `run_analysis`) against a private Store built from the task's
snapshot; the private store never publishes. The rows of the task's scope in every table the step
changed are then written to the task's attempt folder with the build_info entries it added, and the
manifest last. The private file is deleted; the coordinator alone writes the working database.

Workers find the shared folders at the coordinator's paths, or where these variables say:
    UNITSCOPE_WORKER_DATA      the data folder (ONNX models under models/, statistics cache under cache/)
    UNITSCOPE_WORKER_RESULTS   the results folder
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import duckdb

from backend import schema
from backend.config import get_settings
from precompute.analyses.registry import get_analyses
from precompute.cluster import results
from precompute.cluster.snapshot import load_snapshot
from precompute.cluster.tasks import ANALYZE, MATCH, scope_filter, scope_tables
from precompute.core.store import Store
from precompute.jobs.analyze import run_analysis
from precompute.match.runner import run_pair

log = logging.getLogger(__name__)

#: build_info keys the coordinator's own step writes (never copied from a worker)
STEP_KEYS = ("steps_done", "packages", "build_id", "published_at", "schema_version", "commit_id")


class PrivateStore(Store):
    """A Store on a worker's private file: steps commit but never publish (nobody serves it)."""

    def publish(self) -> str:
        return "private"

    def recover(self, *, publish: bool = True) -> None:
        """Nothing to recover: the private file is new for each task and nothing is published from it."""


def shared_folder(spec_path: str, local: str) -> Path:
    """A folder the coordinator named (`spec_path`), or where this worker mounts it (`local`, from Settings)."""
    return Path(local or spec_path)


def _link(private_dir: Path, data_dir: Path, name: str) -> None:
    """Point <private>/<name> at the shared data folder's, so the step finds models and shares the cache."""
    target = data_dir / name
    try:
        target.mkdir(parents=True, exist_ok=True)
        (private_dir / name).symlink_to(target, target_is_directory=True)
    except OSError as exc:  # a read-only data folder: the step then works without it
        log.warning("cannot use %s from this worker (%s)", target, exc)


def digests(con, dataset: str, models: list[str]) -> dict[str, tuple]:
    """(row count, order-free hash sum) of the scope's rows in every scope table."""
    out = {}
    for table in scope_tables():
        where, params = scope_filter(table, dataset, models)
        out[table.name] = tuple(
            con.execute(
                f'SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) FROM "{table.name}" t WHERE {where}', params
            ).fetchone()
        )
    return out


def build_info(con) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM build_info").fetchall())


def build_info_changes(before: dict[str, str], after: dict[str, str]) -> dict[str, dict]:
    """Entries the step added or changed: {"merge": {...}} for JSON objects (seeds, ...), else {"set": v}."""
    changes: dict[str, dict] = {}
    for key, value in after.items():
        if key in STEP_KEYS or key.startswith("step:") or before.get(key) == value:
            continue
        try:
            new, old = json.loads(value), json.loads(before.get(key) or "{}")
        except (TypeError, ValueError):
            new, old = None, None
        if isinstance(new, dict) and isinstance(old, dict):
            changes[key] = {"merge": {k: v for k, v in new.items() if old.get(k, object()) != v}}
        else:
            changes[key] = {"set": value}
    return changes


def _run_step(store: Store, spec: dict) -> None:
    params = spec["params"]
    if spec["kind"] == MATCH:
        run_pair(
            store,
            spec["dataset"],
            spec["model"],
            top_k=params["top_k"],
            memory_gb=params.get("memory_gb"),
            force=True,
            progress=False,
        )
    elif spec["kind"] == ANALYZE:
        analysis = get_analyses([params["analysis"]])[0]
        run_analysis(
            store,
            analysis,
            spec["dataset"],
            spec["model"],
            protocol=params["protocol"],
            seed=params["seed"],
            force=True,
            options=params.get("options"),
        )
    else:
        raise ValueError(f"unknown task kind {spec['kind']!r}")


def _scratch() -> Path:
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory)
    except (ImportError, ValueError):
        return Path(tempfile.gettempdir())


def execute_task(spec: dict) -> dict:
    """Run the task `spec` (made by the coordinator) and write its result; return where and how long."""
    t0 = time.perf_counter()
    results_dir = shared_folder(spec["results_dir"], get_settings().worker_results)
    data_dir = shared_folder(spec["data_dir"], get_settings().worker_data)
    attempt = results.new_attempt(results_dir, spec["slug"])
    private_dir = Path(tempfile.mkdtemp(prefix="unitscope-task-", dir=_scratch()))
    dataset, models = spec["dataset"], list(spec["models"])
    try:
        store = PrivateStore(private_dir / "unitscope.duckdb")
        con = duckdb.connect(str(store.working_path))
        try:
            schema.create_all(con)
            load_snapshot(con, results_dir, spec["snapshot"])
            before, info_before = digests(con, dataset, models), build_info(con)
        finally:
            con.close()
        for name in ("models", "cache"):
            _link(private_dir, data_dir, name)
        t1 = time.perf_counter()
        _run_step(store, spec)
        compute_s = time.perf_counter() - t1
        with store.connect() as con:
            after = digests(con, dataset, models)
            changed = [name for name in after if after[name] != before[name]]
            files = []
            for name in changed:
                table = schema.TABLES_BY_NAME[name]
                where, params = scope_filter(table, dataset, models)
                cols = ", ".join(f'"{c}"' for c in table.column_names)
                results.write_query_parquet(
                    con, f'SELECT {cols} FROM "{name}" WHERE {where}', params, attempt / f"{name}.parquet"
                )
                files.append(f"{name}.parquet")
            results.write_json(attempt / "build_info.json", build_info_changes(info_before, build_info(con)))
            files.append("build_info.json")
        results.write_manifest(
            attempt,
            files,
            task_id=spec["task_id"],
            input_hash=spec["input_hash"],
            dataset=dataset,
            models=models,
            tables=changed,
            compute_s=round(compute_s, 3),
            worker=f"{socket.gethostname()}:{os.getpid()}",
        )
    finally:
        shutil.rmtree(private_dir, ignore_errors=True)
    return {
        "attempt": str(attempt.relative_to(results_dir)),
        "compute_s": compute_s,
        "total_s": time.perf_counter() - t0,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
