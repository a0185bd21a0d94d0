"""Result files in the shared results folder: written atomically, complete only with their manifest.

Layout (all under the results folder, which workers and coordinator share):

    snapshots/<name>/<table>.parquet + manifest.json   what a task reads (written by the coordinator)
    tasks/<task slug>/attempt-<id>/<table>.parquet       a task's output tables (written by one worker attempt)
    tasks/<task slug>/attempt-<id>/build_info.json       the build_info entries the task added or changed
    tasks/<task slug>/attempt-<id>/manifest.json         written last: task id, input hash, file sizes and sha256

Every file is written to a temporary name, fsynced and renamed; the manifest comes last, so a folder
without one (a worker killed midway) or whose files do not match it is never ingested. Each attempt has
its own folder, so an attempt Dask believed lost cannot overwrite a retry's files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from precompute.core.files import sha256_file

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it to `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_json(path: Path, obj: object) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, sort_keys=True, indent=1, default=str))


def write_query_parquet(con, sql: str, params: list, path: Path) -> int:
    """Write a query's rows to a Parquet file atomically (DuckDB's COPY streams them); return the row count."""
    with atomic_path(path) as tmp:
        target = str(tmp).replace("'", "''")
        rows = con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet)", params).fetchall()
    return int(rows[0][0]) if rows else 0


def write_manifest(folder: Path, files: list[str], **fields) -> dict:
    """Describe `files` (names in `folder`) with their size and sha256, plus `fields`; written last."""
    manifest = {
        "format": FORMAT,
        **fields,
        "files": {
            name: {"bytes": (folder / name).stat().st_size, "sha256": sha256_file(folder / name)} for name in files
        },
    }
    write_json(folder / MANIFEST, manifest)
    return manifest


def read_complete(folder: Path, **expected) -> dict | None:
    """The manifest of a complete folder whose fields equal `expected` (e.g. input_hash), else None.

    Complete means: the manifest parses, has the expected fields, and every file it lists exists with
    the recorded size and sha256 (a file truncated or replaced after the manifest fails the check)."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    if any(manifest.get(k) != v for k, v in expected.items()):
        return None
    for name, meta in manifest.get("files", {}).items():
        f = Path(folder) / name
        try:
            if f.stat().st_size != meta["bytes"] or sha256_file(f) != meta["sha256"]:
                log.warning("result file %s does not match its manifest; ignoring %s", f, folder)
                return None
        except (OSError, KeyError, TypeError):
            return None
    return manifest


def task_root(results_dir: Path, slug: str) -> Path:
    return Path(results_dir) / "tasks" / slug


def new_attempt(results_dir: Path, slug: str) -> Path:
    folder = task_root(results_dir, slug) / f"attempt-{uuid.uuid4().hex[:12]}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def find_complete(results_dir: Path, slug: str, input_hash: str) -> tuple[Path, dict] | None:
    """A complete attempt of the task computed from `input_hash` (any one: they are identical)."""
    root = task_root(results_dir, slug)
    if not root.is_dir():
        return None
    for folder in sorted(root.glob("attempt-*")):
        manifest = read_complete(folder, input_hash=input_hash)
        if manifest is not None:
            return folder, manifest
    return None
