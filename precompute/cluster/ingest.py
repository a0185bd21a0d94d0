"""The coordinator ingests one finished task: one Store.step transaction, then a publish.

Inside the step, for every table the task changed, the scope's rows are deleted and the result file's
rows inserted; the build_info entries the task added are merged; the task's input hash is recorded
under build_info['cluster_tasks'] (a rerun uses it to tell ingested results from leftovers). If
anything fails the transaction rolls back and the result stays in place for the next run.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from backend import schema
from precompute.cluster import results
from precompute.cluster.tasks import INGESTED_KEY, scope_filter
from precompute.core.failpoints import failpoint
from precompute.core.store import Store

log = logging.getLogger(__name__)


def _upsert(con, key: str, value: str) -> None:
    con.execute(
        "INSERT INTO build_info (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def ingest(store: Store, folder: Path, manifest: dict) -> float:
    """Apply one complete result folder to the working database in one step; return the seconds it took."""
    t0 = time.perf_counter()
    task_id, dataset, models = manifest["task_id"], manifest["dataset"], list(manifest["models"])
    with store.step(task_id) as con:
        for name in manifest["tables"]:
            table = schema.TABLES_BY_NAME[name]
            where, params = scope_filter(table, dataset, models)
            cols = ", ".join(f'"{c}"' for c in table.column_names)
            con.execute(f'DELETE FROM "{name}" WHERE {where}', params)
            con.execute(
                f'INSERT INTO "{name}" ({cols}) SELECT {cols} FROM read_parquet(?)',
                [str(Path(folder) / f"{name}.parquet")],
            )
            failpoint("ingest.table_written")
        changes = json.loads((Path(folder) / "build_info.json").read_text())
        for key, change in changes.items():
            if "merge" in change:
                for entry, value in change["merge"].items():
                    store.record(con, key, entry, value)
            else:
                _upsert(con, key, change["set"])
        store.record(con, INGESTED_KEY, task_id, manifest["input_hash"])
    seconds = time.perf_counter() - t0
    log.info("ingested %s from %s in %.2f s", task_id, folder, seconds)
    return seconds


def ingested_hashes(con) -> dict[str, str]:
    row = con.execute("SELECT value FROM build_info WHERE key = ?", [INGESTED_KEY]).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


def discard(results_dir: Path, slug: str) -> None:
    """Remove every attempt of a task (after ingest, or stale ones)."""
    shutil.rmtree(results.task_root(results_dir, slug), ignore_errors=True)
