"""Named failpoints: kill the process with SIGKILL at an exact write checkpoint (crash-safety tests).

Every place where a write of the precompute job can be interrupted calls `failpoint("name")`, and
`POINTS` below lists every name with the moment it marks. Two environment variables, read once when
this module is imported:

    UNITSCOPE_FAILPOINT=NAME[@N]   SIGKILL this process the N-th time it passes NAME (default: the 1st)
    UNITSCOPE_FAILPOINT_LOG=FILE   append one line "NAME" to FILE each time the process passes a failpoint

With neither set, `failpoint()` is one comparison of a module global with None. An unknown name or a
bad `@N` is a clear error: `python -m precompute` refuses to start (exit 2), and any other process
raises FailpointError at the first failpoint it passes.

This is how storage engines test crash safety (etcd's gofail, FreeBSD's fail(9)): instead of killing
a process after a random delay, which may miss the instant that matters and depends on the machine's
speed, the test names the instant. tests/integration/test_deploy_faults.py kills `datasets import`,
`run`, `analyze` and a `batch` on a Dask cluster at every point below that the command reaches (the
log tells which, and how often), then checks the served database and reruns the command; see
docs/failpoints.md. A new `failpoint("...")` call needs its entry here, and is then tested by itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

ENV = "UNITSCOPE_FAILPOINT"
LOG_ENV = "UNITSCOPE_FAILPOINT_LOG"

#: name -> the moment it marks (docs/failpoints.md lists the same table, with where each call sits)
# a table, each name on its line and its moment below it
# fmt: off
POINTS: dict[str, str] = {
    "lock.acquired":
        "the writer lock (unitscope.work.lock) was just taken; this process has written nothing yet",
    "working.mid_copy":
        "about half of the served file is copied to the new working database's temporary file",
    "working.before_rename":
        "the new working database's temporary file is complete; it is not yet renamed to unitscope.work.duckdb",
    "step.begun":
        "a step's transaction has begun on the working database; the step has written nothing yet",
    "step.before_commit":
        "a step's writes and its build_info records are in the open transaction; COMMIT has not run",
    "step.committed":
        "a step's transaction is committed (its WAL not yet checkpointed); the served file is not yet published",
    "publish.mid_copy":
        "about half of the working database is copied to the publish temporary file (unitscope.duckdb.publish-PID)",
    "publish.before_rename":
        "the publish temporary file is complete, stamped with the new build id and fsynced; not yet renamed",
    "publish.renamed":
        "the served file was just replaced by the new build (os.replace); the folder is not yet fsynced",
    "import.images_written":
        "an import's stimuli and images are inserted in the open transaction; its sites and responses are not",
    "match.tables_written":
        "matches, layer_matches and featuremap_matches are inserted in the open transaction; "
        "unit_activations and match_runs are not",
    "gather.rows_written":
        "gathered unit activations are inserted in the open transaction; the step has not committed",
    "analyze.outputs_cleared":
        "an analysis's previous rows for its (dataset, model) are deleted in the open transaction; "
        "no new rows are written yet",
    "analyze.rows_written":
        "an analysis's new rows of one table are inserted in the open transaction (passed once per table)",
    "snapshot.mid_write":
        "a task's snapshot folder (dataset or task part) has some table files and no manifest yet",
    "ingest.table_written":
        "one table of a cluster task's result is replaced in the ingest transaction (passed once per table)",
    "ingest.published":
        "a cluster task's result is ingested and published; its result folder is not yet removed",
}
# fmt: on


class FailpointError(ValueError):
    """UNITSCOPE_FAILPOINT names no failpoint, or the code passes a name missing from POINTS."""


def parse(spec: str) -> tuple[str, int]:
    """`NAME` or `NAME@N` -> (NAME, N); FailpointError for an unknown name or an N that is not >= 1."""
    name, at, count = spec.strip().partition("@")
    if name not in POINTS:
        raise FailpointError(
            f"{ENV}={spec!r}: no failpoint is named {name!r}; the failpoints are: " + ", ".join(POINTS)
        )
    if not at:
        return name, 1
    if not count.isdigit() or int(count) < 1:
        raise FailpointError(f"{ENV}={spec!r}: after '@' comes the pass to kill at, a whole number >= 1")
    return name, int(count)


class _Armed:
    """What the environment asked for: a point to kill at, a log to append to, or a configuration error."""

    def __init__(self, spec: str, log_path: str):
        self.error: FailpointError | None = None
        self.target: tuple[str, int] | None = None
        if spec:
            try:
                self.target = parse(spec)
            except FailpointError as exc:
                self.error = exc
        self.log_path = log_path or None
        self.passes: dict[str, int] = {}

    def hit(self, name: str) -> None:
        if self.error is not None:
            raise self.error
        if name not in POINTS:
            raise FailpointError(f"failpoint({name!r}) is not listed in precompute.core.failpoints.POINTS")
        n = self.passes[name] = self.passes.get(name, 0) + 1
        if self.log_path:
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{name}\n".encode())
            finally:
                os.close(fd)
        if self.target == (name, n):
            _kill(f"{name}@{n}")


def _kill(where: str) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    with contextlib.suppress(OSError):
        os.write(2, f"failpoint {where}: SIGKILL to process {os.getpid()}\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)


def _from_environment() -> _Armed | None:
    spec, log_path = os.environ.get(ENV, ""), os.environ.get(LOG_ENV, "")
    return _Armed(spec, log_path) if spec.strip() or log_path else None


#: None unless UNITSCOPE_FAILPOINT or UNITSCOPE_FAILPOINT_LOG is set (read once, at import)
_armed: _Armed | None = _from_environment()


def failpoint(name: str) -> None:
    """Mark a write checkpoint `name` (a key of POINTS): SIGKILL here when UNITSCOPE_FAILPOINT asks for it."""
    if _armed is None:
        return
    _armed.hit(name)


def check_environment() -> None:
    """Raise FailpointError when UNITSCOPE_FAILPOINT is set to something that is not a failpoint."""
    if _armed is not None and _armed.error is not None:
        raise _armed.error
