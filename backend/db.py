"""Read-only access to the served DuckDB file: one connection per thread, reopened on a new build.

Precompute never writes the served file in place: it replaces it atomically (os.replace), so a new
build is a new inode. Each call checks the file's identity (inode, size, mtime) with one `stat`; when
it changed, the thread opens the new file and reads its build id. A connection keeps the old inode
open, so a request that started on one build finishes on it (`pinned()` holds one connection for the
duration of a request, so one response never mixes two builds).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

log = logging.getLogger(__name__)


class DatabaseMissingError(RuntimeError):
    """The served database file does not exist (yet)."""


@dataclass(frozen=True)
class _Handle:
    signature: tuple[int, int, int]
    con: duckdb.DuckDBPyConnection
    build_id: str
    instance: object = None  # the build's shared in-memory instance, kept alive while a thread uses it


_BUILDS: dict[tuple[str, tuple[int, int, int]], duckdb.DuckDBPyConnection] = {}
_BUILDS_LOCK = threading.Lock()


def _open_build(path: Path, sig: tuple[int, int, int]) -> tuple[duckdb.DuckDBPyConnection, object]:
    """A new connection (for one thread) to the build now at `path`, sharing one instance per build.

    Not duckdb.connect(path): DuckDB caches database instances by path within a process, so while a
    thread still holds the old build, connect(path) hands back the *old* file. A private in-memory
    instance that attaches the file opens the file now at that path; its cursors share its buffer pool.
    """
    key = (str(path), sig)
    with _BUILDS_LOCK:
        base = _BUILDS.get(key)
        if base is None:
            base = duckdb.connect(":memory:")
            base.execute("ATTACH '{}' AS served (READ_ONLY)".format(str(path).replace("'", "''")))
            for old in [k for k in _BUILDS if k[0] == key[0]]:
                # forget, do not close: closing an instance's connection closes the cursors of threads
                # still answering a request on that build; the last cursor to close frees it
                del _BUILDS[old]
            _BUILDS[key] = base
        con = base.cursor()
    con.execute("USE served")
    return con, base


class Database:
    """The served database of one data folder, opened read-only."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._local = threading.local()

    def _signature(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise DatabaseMissingError(str(self.path)) from None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def exists(self) -> bool:
        return self.path.exists()

    def _handle(self) -> _Handle:
        pinned = getattr(self._local, "pinned", None)
        if pinned is not None:
            return pinned
        sig = self._signature()
        handle: _Handle | None = getattr(self._local, "handle", None)
        if handle is not None and handle.signature == sig:
            return handle
        if handle is not None:
            with contextlib.suppress(duckdb.Error):
                handle.con.close()
        con, instance = _open_build(self.path, sig)
        rows = con.execute("SELECT value FROM build_info WHERE key = 'build_id'").fetchall()
        handle = _Handle(sig, con, rows[0][0] if rows else "unpublished", instance)
        self._local.handle = handle
        log.debug("opened %s (build %s)", self.path, handle.build_id)
        return handle

    def build_id(self) -> str:
        return self._handle().build_id

    @contextlib.contextmanager
    def pinned(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Hold this thread's current connection (one build) for the duration of the block."""
        if getattr(self._local, "pinned", None) is not None:
            yield self._local.pinned.con
            return
        handle = self._handle()
        self._local.pinned = handle
        try:
            yield handle.con
        finally:
            self._local.pinned = None

    def query(self, sql: str, params: list | dict | None = None) -> pd.DataFrame:
        """Run one parameterised query and return a DataFrame (never format values into `sql`)."""
        return self._handle().con.execute(sql, params or []).df()

    def close(self) -> None:
        handle = getattr(self._local, "handle", None)
        if handle is not None:
            handle.con.close()
            self._local.handle = None
