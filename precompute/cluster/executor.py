"""Run a batch's tasks: `local` (in this process, one after the other) or `dask` (on a Dask cluster).

local  runs each step in this process exactly as `run` and `analyze` do, one after the other. A task
       that raises is reported (logged with its id); the tasks that depend on it are not run; the
       others go on (a KeyboardInterrupt still stops the batch at once).
dask   the coordinator (this process) keeps the task graph: when a task's dependencies are in the
       working database it checks whether the task is already done (skipped), whether a complete result
       file computed from the same inputs is waiting in the results folder (ingested: a coordinator that
       crashed left it), and otherwise writes the task's snapshot and submits it to the cluster with
       Dask's `retries=`. Each finished task is ingested in one transaction and published at once, so
       the dashboard fills in as the cluster works. A task that still fails after its retries is
       reported; the tasks that depend on it are not run; the others go on.

Both print progress (tasks done/total, ETA); the dask executor also prints the dashboard link.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from backend.config import get_settings
from precompute.analyses.registry import get_analyses
from precompute.cluster import results
from precompute.cluster.ingest import discard, ingest
from precompute.cluster.report import BatchReport, Progress, Report, TaskOutcome
from precompute.cluster.snapshot import write_snapshot
from precompute.cluster.tasks import (
    ANALYZE,
    MATCH,
    Task,
    check_graph,
    dataset_fingerprint,
    file_slug,
    input_hash,
)
from precompute.cluster.worker import execute_task
from precompute.core.catalog import inputs_fingerprint, matched_models
from precompute.core.errors import UserError
from precompute.core.failpoints import failpoint
from precompute.core.store import Store, steps_done
from precompute.jobs.analyze import ANALYSIS_INPUTS_KEY, check_inputs, run_analysis
from precompute.match.runner import run_pair

log = logging.getLogger(__name__)

EXECUTORS = ("local", "dask")
DEFAULT_RETRIES = 2
#: results folder when none is given: beside the database, so it is on the same (shared) disk
RESULTS_DIR_NAME = "cluster-results"


def default_results_dir(store: Store) -> Path:
    return get_settings().results_dir or store.served_path.parent / RESULTS_DIR_NAME


def run_tasks(
    tasks: Sequence[Task],
    store: Store,
    *,
    executor: str = "local",
    scheduler: str | None = None,
    results_dir: Path | None = None,
    workers: int | None = None,
    retries: int = DEFAULT_RETRIES,
    client=None,
    report: Report | None = None,
) -> BatchReport:
    """Run `tasks` (in a valid order, see tasks.build_tasks) with the chosen executor."""
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    check_graph(tasks)
    report = report or log.info
    if executor == "local":
        if scheduler:
            raise UserError("--scheduler needs --executor dask")
        return LocalExecutor(report).run(tasks, store)
    return DaskExecutor(
        scheduler=scheduler,
        results_dir=results_dir or default_results_dir(store),
        workers=workers,
        retries=retries,
        client=client,
        report=report,
    ).run(tasks, store)


# ---------------------------------------------------------------------------------------------- local
def run_here(task: Task, store: Store) -> bool:
    """Run a task's step in this process against `store`; False when it was skipped (already done)."""
    p = task.params
    if task.kind == MATCH:
        return (
            run_pair(store, task.dataset, task.model, top_k=p["top_k"], memory_gb=p.get("memory_gb"), force=task.force)
            is not None
        )
    analysis = get_analyses([p["analysis"]])[0]
    return run_analysis(
        store,
        analysis,
        task.dataset,
        task.model,
        protocol=p["protocol"],
        seed=p["seed"],
        force=task.force,
        options=task.options,
    )


class LocalExecutor:
    """Each task's step in this process, in order. A task that raises fails (its step rolled back, as the
    Store does); the tasks that depend on it are blocked; the others go on, as with the dask executor.
    KeyboardInterrupt and SystemExit are not caught: they stop the batch at once."""

    def __init__(self, report: Report):
        self.report = report

    def run(self, tasks: Sequence[Task], store: Store) -> BatchReport:
        out = BatchReport()
        progress = Progress(len(tasks), self.report)
        state: dict[str, str] = {}  # task id -> state
        t0 = time.perf_counter()
        for task in tasks:
            bad = [d for d in task.deps if state.get(d) in ("failed", "blocked")]
            if bad:
                o = TaskOutcome(task.task_id, "blocked", error=f"{bad[0]} failed")
            else:
                t1 = time.perf_counter()
                try:
                    ran = run_here(task, store)
                except Exception as exc:  # reported; what depends on it is blocked; the batch goes on
                    if isinstance(exc, UserError):
                        log.error("task %s failed: %s", task.task_id, exc)
                    else:
                        log.exception("task %s failed: %s", task.task_id, exc)
                    o = TaskOutcome(
                        task.task_id,
                        "failed",
                        compute_s=time.perf_counter() - t1,
                        error=str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}",
                    )
                else:
                    o = TaskOutcome(task.task_id, "ran" if ran else "skipped", compute_s=time.perf_counter() - t1)
            state[o.task_id] = o.state
            out.outcomes.append(o)
            progress.update(o)
        out.wall_s = time.perf_counter() - t0
        return out


# ---------------------------------------------------------------------------------------------- dask
@dataclass
class _Prepared:
    task: Task
    action: str  # skip | recover | submit
    input_hash: str = ""
    spec: dict | None = None
    leftover: tuple[Path, dict] | None = None
    prepare_s: float = 0.0


class DaskExecutor:
    """The coordinator: submits ready tasks to a Dask cluster and ingests each result as it finishes."""

    def __init__(
        self,
        *,
        scheduler: str | None,
        results_dir: Path,
        workers: int | None = None,
        retries: int = DEFAULT_RETRIES,
        client=None,
        report: Report,
    ):
        self.scheduler, self.results_dir, self.workers = scheduler, Path(results_dir).resolve(), workers
        self.retries, self.client, self.report = retries, client, report

    # ------------------------------------------------------------------ cluster
    def _connect(self):
        from distributed import Client, LocalCluster

        if self.client is not None:
            return self.client, None, False
        if self.scheduler:
            try:
                return Client(self.scheduler, timeout="30s"), None, True
            except OSError as exc:
                raise UserError(
                    f"cannot reach the Dask scheduler at {self.scheduler} ({exc}); start it "
                    "(docs/cluster.md) or check the address"
                ) from None
        n = self.workers or max(1, min(os.cpu_count() or 1, 4))
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
        )
        return Client(cluster), cluster, True

    # ------------------------------------------------------------------ one task
    def _prepare(self, task: Task, store: Store) -> _Prepared:
        t0 = time.perf_counter()
        slug = file_slug(task.task_id)
        with store.connect() as con:
            models = [task.model] if task.model else matched_models(con, task.dataset)
            _check_inputs(con, task)
            h = input_hash(con, task, models)
            if not task.force and _is_done(con, task, models):
                discard(self.results_dir, slug)  # a result already ingested, or one from older inputs
                return _Prepared(task, "skip", h, prepare_s=time.perf_counter() - t0)
            leftover = results.find_complete(self.results_dir, slug, h)
            if leftover is not None:
                return _Prepared(task, "recover", h, leftover=leftover, prepare_s=time.perf_counter() - t0)
            fp = repr(dataset_fingerprint(con, task.dataset)).encode()
            dataset_key = f"{file_slug(task.dataset)}-{hashlib.sha256(fp).hexdigest()[:12]}"
            folders = write_snapshot(con, self.results_dir, task.dataset, models, dataset_key, slug, h)
        spec = {
            "task_id": task.task_id,
            "kind": task.kind,
            "dataset": task.dataset,
            "model": task.model,
            "models": models,
            "params": dict(task.params),
            "input_hash": h,
            "slug": slug,
            "snapshot": folders,
            "results_dir": str(self.results_dir),
            "data_dir": str(store.served_path.parent),
        }
        return _Prepared(task, "submit", h, spec=spec, prepare_s=time.perf_counter() - t0)

    def _ingest(
        self, store: Store, prep: _Prepared, folder: Path, manifest: dict, state: str, info: dict | None = None
    ) -> TaskOutcome:
        seconds = ingest(store, folder, manifest)
        failpoint("ingest.published")
        discard(self.results_dir, prep.spec["slug"] if prep.spec else file_slug(prep.task.task_id))
        if prep.spec:
            for rel in prep.spec["snapshot"][1:]:  # the task's own part; the dataset part is shared
                shutil.rmtree(self.results_dir / rel, ignore_errors=True)
        return TaskOutcome(
            prep.task.task_id,
            state,
            compute_s=float(manifest.get("compute_s", 0.0)),
            ingest_s=seconds,
            prepare_s=prep.prepare_s,
            worker=(info or {}).get("worker", ""),
        )

    def _run_on_coordinator(self, task: Task, store: Store) -> TaskOutcome:
        t0 = time.perf_counter()
        self.report(f"{task.describe()}: on the coordinator (it reads two datasets)")
        try:
            ran = run_here(task, store)
        except Exception as exc:  # as a worker's failure: reported, the batch goes on
            log.error("task %s failed: %s", task.task_id, exc)
            return TaskOutcome(task.task_id, "failed", error=f"{type(exc).__name__}: {exc}")
        return TaskOutcome(
            task.task_id, "ran" if ran else "skipped", compute_s=time.perf_counter() - t0, worker="coordinator"
        )

    # ------------------------------------------------------------------ the loop
    def run(self, tasks: Sequence[Task], store: Store) -> BatchReport:
        run = _DaskRun(self, tasks, store)
        try:
            run.launch()
            while run.running:
                run.collect(next(run.ac))
                run.launch()
        finally:
            run.close()
        if not run.running and not run.waiting:
            shutil.rmtree(self.results_dir / "snapshots", ignore_errors=True)
        run.out.wall_s = time.perf_counter() - run.t0
        return run.out


class _DaskRun:
    """One DaskExecutor.run: tasks wait until their dependencies finish, are prepared (skip, recover a result
    left in the results folder, or submit), and each finished future is ingested as it arrives."""

    def __init__(self, executor: DaskExecutor, tasks: Sequence[Task], store: Store):
        self.executor, self.store = executor, store
        self.out = BatchReport()
        self.progress = Progress(len(tasks), executor.report)
        self.t0 = time.perf_counter()
        executor.results_dir.mkdir(parents=True, exist_ok=True)
        self.waiting = list(tasks)
        self.finished: dict[str, str] = {}  # task id -> state
        self.running: dict[str, _Prepared] = {}
        self.client, self.cluster, self.owned = None, None, False
        self.ac = None  # made with the client: an empty as_completed() looks for one

    def finish(self, o: TaskOutcome) -> None:
        self.finished[o.task_id] = o.state
        self.out.outcomes.append(o)
        self.progress.update(o)

    def launch(self) -> None:
        """Start every task whose dependencies are done (block those whose dependencies failed)."""
        changed = True
        while changed:
            changed = False
            for task in list(self.waiting):
                bad = [d for d in task.deps if self.finished.get(d) in ("failed", "blocked")]
                if bad:
                    self.waiting.remove(task)
                    self.finish(TaskOutcome(task.task_id, "blocked", error=f"{bad[0]} failed"))
                    changed = True
                elif all(d in self.finished for d in task.deps):
                    self.waiting.remove(task)
                    changed = True
                    self.start(task)

    def start(self, task: Task) -> None:
        executor, store = self.executor, self.store
        if task.options:
            # It reads a second dataset, which a worker's snapshot (one dataset) does not hold.
            self.finish(executor._run_on_coordinator(task, store))
            return
        try:
            prep = executor._prepare(task, store)
        except UserError as exc:
            self.finish(TaskOutcome(task.task_id, "failed", error=str(exc)))
            return
        if prep.action == "skip":
            self.finish(TaskOutcome(task.task_id, "skipped", prepare_s=prep.prepare_s))
        elif prep.action == "recover":
            self.finish(executor._ingest(store, prep, *prep.leftover, state="recovered"))
        else:
            self.submit(prep)

    def submit(self, prep: _Prepared) -> None:
        from distributed import as_completed  # dask is needed only by the dask executor

        if self.client is None:
            self.client, self.cluster, self.owned = self.executor._connect()
            self.ac = as_completed()
            self.out.dashboard = _dashboard(self.client)
            report = self.executor.report
            report(
                f"Dask dashboard: {self.out.dashboard}"
                if self.out.dashboard
                else "Dask dashboard: the scheduler serves none"
            )
            report(
                f"Dask scheduler: {self.client.scheduler.address}, "
                f"{len(self.client.scheduler_info().get('workers', {}))} worker(s)"
            )
        # the database in the key: two databases on one cluster with the same inputs (two labs, two test
        # folders) must not get each other's result, which names a folder in the other's results folder
        db = hashlib.sha256(str(self.store.served_path).encode()).hexdigest()[:8]
        key = f"unitscope-{prep.task.task_id}-{prep.input_hash[:12]}-{db}"
        self.ac.add(self.client.submit(execute_task, prep.spec, key=key, retries=self.executor.retries, pure=False))
        self.running[key] = prep

    def collect(self, future) -> None:
        """Ingest one finished future's result (or record its failure)."""
        prep = self.running.pop(future.key)
        task_id = prep.task.task_id
        try:
            info = future.result()
        except Exception as exc:  # the task's error after its retries (or a worker that kept dying)
            log.error("task %s failed: %s", task_id, exc)
            self.finish(TaskOutcome(task_id, "failed", error=f"{type(exc).__name__}: {exc}"))
            return
        folder = self.executor.results_dir / info["attempt"]
        manifest = results.read_complete(folder, input_hash=prep.input_hash, task_id=task_id)
        if manifest is None:
            self.finish(TaskOutcome(task_id, "failed", error=f"result {folder} is incomplete"))
        else:
            self.finish(self.executor._ingest(self.store, prep, folder, manifest, "ran", info))

    def close(self) -> None:
        for prep in self.running.values():
            log.warning("task %s was still running; its result file stays for the next run", prep.task.task_id)
        if self.owned and self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _dashboard(client) -> str | None:
    """The scheduler's dashboard link (None when it serves none), with a note when bokeh is missing here."""
    try:
        running = "dashboard" in client.scheduler_info().get("services", {})
    except Exception:  # an old scheduler: trust the link
        running = True
    if not running:
        return None
    note = "" if importlib.util.find_spec("bokeh") else " (its pages need the bokeh package on the scheduler)"
    return client.dashboard_link + note


def _check_inputs(con, task: Task) -> None:
    """UserError (the task fails at once, not after retries) when what it needs is not in the database."""
    if task.kind == ANALYZE:
        analysis = get_analyses([task.params["analysis"]])[0]
        check_inputs(con, task.dataset, [task.model] if task.model else [], analysis.requires_matching)
        return
    if not con.execute("SELECT count(*) FROM stimuli WHERE dataset = ?", [task.dataset]).fetchone()[0]:
        raise UserError(
            f"dataset {task.dataset!r} has no stimuli (is it imported? `python -m precompute datasets list`)"
        )
    if not con.execute("SELECT count(*) FROM models WHERE model = ?", [task.model]).fetchone()[0]:
        raise UserError(
            f"model {task.model!r} is not added; add it with `python -m precompute models add` "
            "(see `python -m precompute models list`)"
        )


def _is_done(con, task: Task, models: list[str]) -> bool:
    """The rule `run` and `analyze` use: a matched pair; an analysis step done on the same inputs."""
    if task.kind == MATCH:
        return (
            con.execute(
                "SELECT count(*) FROM match_runs WHERE dataset = ? AND model = ?", [task.dataset, task.model]
            ).fetchone()[0]
            > 0
        )
    if task.task_id not in steps_done(con):
        return False
    row = con.execute("SELECT value FROM build_info WHERE key = ?", [ANALYSIS_INPUTS_KEY]).fetchone()
    recorded = json.loads(row[0]) if row and row[0] else {}
    return recorded.get(task.task_id) == inputs_fingerprint(con, task.dataset, models)
