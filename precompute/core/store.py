"""The working database, one transaction per step, and atomic publishing of the served file.

Layout in the data folder (DESIGN.md, Storage):

    unitscope.duckdb        the served file: read-only for the app, replaced atomically
    unitscope.work.duckdb   the working database precompute writes
    unitscope.work.lock     held (flock) by the one precompute process writing

A step runs inside one transaction on the working database: if it raises or the process dies, DuckDB
rolls that transaction back and the working file is as it was before the step. After each committed
step the working file is checkpointed, copied to a temporary file beside the served one, stamped with a
new build id, and moved over the served file with `os.replace` (atomic on POSIX). A reader that has the
old file open keeps reading the old build; new readers see the new one whole.

Recovery, whenever a process takes the writer lock: temporary copies that a killed process left
(`unitscope.duckdb.publish-PID`, `unitscope.work.duckdb.tmp-PID`) are removed, and when the working
database holds a committed step that was never published (the process died between COMMIT and the
rename: its `commit_id` in build_info differs from the served file's), it is published first. So a
rerun after a kill at any point finds the served file complete and up to date with every committed step.
Every such point is a named failpoint (precompute/core/failpoints.py, docs/failpoints.md).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import duckdb

from backend import schema
from precompute.core.failpoints import failpoint
from precompute.core.steps import parse_step

log = logging.getLogger(__name__)

#: Packages whose versions are recorded in build_info (those that shape results).
TRACKED_PACKAGES = (
    "numpy",
    "scipy",
    "pandas",
    "duckdb",
    "pillow",
    "torch",
    "torchvision",
    "timm",
    "onnx",
    "onnxruntime",
    "scikit-learn",
    "scikit-image",
    "h5py",
    "xarray",
)


class StoreBusyError(RuntimeError):
    """Another precompute process is writing the same database."""


def package_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """Writer side of one Unitscope database (served file + working file)."""

    def __init__(self, served_path: Path | str):
        self.served_path = Path(served_path).resolve()
        stem = self.served_path.name.removesuffix(".duckdb")
        self.working_path = self.served_path.with_name(f"{stem}.work.duckdb")
        self.lock_path = self.served_path.with_name(f"{stem}.work.lock")
        self._lock_fd: int | None = None
        self._depth = 0

    # ------------------------------------------------------------------ locking
    @contextlib.contextmanager
    def locked(self, *, recover: bool = True) -> Iterator[Store]:
        """Hold the single-writer lock (re-entrant within this object); taking it runs `recover()`
        (`recover=False`: only its removal of stale temporary files, for `publish`, which publishes anyway)."""
        if self._depth == 0:
            self.served_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StoreBusyError(
                    f"another precompute process is writing {self.served_path} "
                    f"(lock {self.lock_path}); wait for it to finish or stop it"
                ) from None
            self._lock_fd = fd
            failpoint("lock.acquired")
        self._depth += 1
        try:
            if self._depth == 1:
                self.recover(publish=recover)
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0 and self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

    # ------------------------------------------------------------------ recovery
    def _stale_temporaries(self) -> list[Path]:
        folder = self.served_path.parent
        return [
            *folder.glob(glob.escape(self.served_path.name) + ".publish-*"),
            *folder.glob(glob.escape(self.working_path.name) + ".tmp-*"),
        ]

    def recover(self, *, publish: bool = True) -> None:
        """Finish what a killed writer left (see the module docstring); run whenever the lock is taken."""
        for stale in self._stale_temporaries():
            log.info("removing %s, left by a process killed while copying", stale.name)
            stale.unlink(missing_ok=True)
        if not publish or not self.working_path.exists():
            return
        con = duckdb.connect(str(self.working_path))
        try:
            working = _get(con, COMMIT_KEY)
        except duckdb.CatalogException:  # no build_info yet: nothing was ever committed
            working = None
        finally:
            con.close()
        if working is not None and working != read_build_info(self.served_path).get(COMMIT_KEY):
            log.warning(
                "the working database has a committed step that was never published (a process was "
                "killed after its commit); publishing it now"
            )
            self.publish()

    # ------------------------------------------------------------------ connections
    def _prepare_working(self) -> None:
        """Create the working file: from the served file when one exists, else empty."""
        if self.working_path.exists():
            return
        tmp = self.working_path.with_name(self.working_path.name + f".tmp-{os.getpid()}")
        if self.served_path.exists():
            copy_file(self.served_path, tmp, midway=lambda: failpoint("working.mid_copy"))
        con = duckdb.connect(str(tmp))
        try:
            schema.create_all(con)
            _set(con, "schema_version", str(schema.SCHEMA_VERSION))
        finally:
            con.close()
        _fsync(tmp)
        failpoint("working.before_rename")
        os.replace(tmp, self.working_path)
        _fsync_dir(self.working_path.parent)

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the working database (under the writer lock), schema ensured."""
        with self.locked():
            self._prepare_working()
            con = duckdb.connect(str(self.working_path))
            try:
                schema.create_all(con)
                yield con
            finally:
                con.close()

    # ------------------------------------------------------------------ steps
    @contextlib.contextmanager
    def step(self, name: str, *, publish: bool = True, record: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run one step in one transaction; on success record it and publish a new build.

        `record=False` is for maintenance steps (removals) that are not part of a build.
        On any exception the transaction is rolled back, nothing is published and the exception
        propagates: the served file is exactly as it was.
        """
        t0 = time.perf_counter()
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                failpoint("step.begun")
                yield con
                seconds = time.perf_counter() - t0
                if record:
                    done = steps_done(con)
                    if name not in done:
                        done.append(name)
                    _set(con, "steps_done", json.dumps(done))
                    _set(con, f"step:{name}", json.dumps({"finished_at": now_iso(), "seconds": round(seconds, 3)}))
                _set(con, "packages", json.dumps(package_versions()))
                _set(con, COMMIT_KEY, uuid.uuid4().hex)  # differs from the served file's until it is published
                failpoint("step.before_commit")
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                log.error("step %s failed; the working database was rolled back", name)
                raise
            failpoint("step.committed")
            con.execute("CHECKPOINT")
        log.info("step %s done in %.1f s", name, time.perf_counter() - t0)
        if publish:
            self.publish()

    def forget_derived(
        self, con: duckdb.DuckDBPyConnection, *, dataset: str | None = None, model: str | None = None
    ) -> list[str]:
        """Un-record the steps whose results were removed with a dataset or a model; return them.

        Step names follow one convention: `dataset:D`, `model:M`, `match:D:M`, `analyze:NAME:D:M` and
        `analyze:NAME:D` (statistics over every model of a dataset, redone when any model changes).
        """
        forgotten = [s for s in steps_done(con) if step_depends_on(s, dataset=dataset, model=model)]
        if forgotten:
            _set(con, "steps_done", json.dumps([s for s in steps_done(con) if s not in forgotten]))
            for name in forgotten:
                con.execute("DELETE FROM build_info WHERE key = ?", [f"step:{name}"])
        return forgotten

    def record(self, con: duckdb.DuckDBPyConnection, key: str, entry: str, value: object) -> None:
        """Add entry -> value to the JSON object under build_info[key] (seeds, input_hashes)."""
        current = _get(con, key)
        obj = json.loads(current) if current else {}
        obj[entry] = value
        _set(con, key, json.dumps(obj, sort_keys=True))

    # ------------------------------------------------------------------ publishing
    def publish(self) -> str:
        """Atomically replace the served file with a copy of the working file; return the build id."""
        with self.locked(recover=False):  # taking it removed any temporary copy a killed publish left
            self._prepare_working()
            build_id = uuid.uuid4().hex
            tmp = self.served_path.with_name(self.served_path.name + f".publish-{os.getpid()}")
            try:
                con = duckdb.connect(str(self.working_path))
                con.execute("CHECKPOINT")
                con.close()
                copy_file(self.working_path, tmp, midway=lambda: failpoint("publish.mid_copy"))
                con = duckdb.connect(str(tmp))
                try:
                    _set(con, "build_id", build_id)
                    _set(con, "published_at", now_iso())
                    con.execute("CHECKPOINT")
                finally:
                    con.close()
                _fsync(tmp)
                failpoint("publish.before_rename")
                os.replace(tmp, self.served_path)
                failpoint("publish.renamed")
                _fsync_dir(self.served_path.parent)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            log.info("published build %s to %s", build_id, self.served_path)
            return build_id


#: build_info key: a new id in every step's transaction; the served file carries the id of the last step published
COMMIT_KEY = "commit_id"


def copy_file(src: Path, dst: Path, *, midway: Callable[[], None] | None = None) -> None:
    """Copy `src` to a new file `dst` (in the kernel, as shutil does), calling `midway` (a failpoint) when
    half of it is written."""
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:  # unbuffered: the kernel
        half = os.fstat(fin.fileno()).st_size // 2  # moves both positions
        if half:
            _copy_range(fin, fout, half)
        if midway is not None:
            midway()
        _copy_range(fin, fout, None)


def _copy_range(fin, fout, count: int | None) -> None:
    """Copy `count` bytes (None: up to the end) from fin's position to fout's; both positions advance."""
    try:
        while count is None or count > 0:
            want = (1 << 30) if count is None else min(count, 1 << 30)
            n = os.sendfile(fout.fileno(), fin.fileno(), None, want)
            if n == 0:
                break
            if count is not None:
                count -= n
    except OSError as exc:  # sendfile refused (an unusual file system): copy through user space
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise
        while count is None or count > 0:
            block = fin.read(1 << 24 if count is None else min(count, 1 << 24))
            if not block:
                break
            view = memoryview(block)
            while view:
                view = view[fout.write(view) :]
            if count is not None:
                count -= len(block)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a power cut after it keeps the new name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


def read_build_info(db_path: Path) -> dict[str, str]:
    """build_info of a database file opened read-only ({} when it does not exist or cannot be read)."""
    if not Path(db_path).exists():
        return {}
    con = duckdb.connect(":memory:")
    try:
        con.execute("ATTACH '{}' AS served (READ_ONLY)".format(str(db_path).replace("'", "''")))
        return dict(con.execute("SELECT key, value FROM served.build_info").fetchall())
    except duckdb.Error:
        return {}
    finally:
        con.close()


def _set(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute(
        "INSERT INTO build_info (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )


def _get(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    rows = con.execute("SELECT value FROM build_info WHERE key = ?", [key]).fetchall()
    return rows[0][0] if rows else None


def step_depends_on(step: str, *, dataset: str | None = None, model: str | None = None) -> bool:
    """Whether a step's results derive from `dataset` or `model` (see Store.forget_derived)."""
    parsed = parse_step(step)
    return parsed is not None and parsed.depends_on(dataset=dataset, model=model)


def steps_done(con: duckdb.DuckDBPyConnection) -> list[str]:
    raw = _get(con, "steps_done")
    return json.loads(raw) if raw else []


def read_steps_done(db_path: Path) -> list[str]:
    """Steps recorded in a database file (empty if the file does not exist or is unreadable)."""
    if not Path(db_path).exists():
        return []
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error:
        return []
    try:
        return steps_done(con)
    except duckdb.Error:
        return []
    finally:
        con.close()
