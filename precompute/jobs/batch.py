"""Check and run a TOML batch file (parsed by batch_file.py): imports and model additions, then runs
(datasets x models) and analyses, done in that order.

Imports and model additions run in this process; runs and analyses become tasks (precompute/cluster)
run by the `local` executor (in this process) or the `dask` executor (on a Dask cluster).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from pathlib import Path

from backend.config import get_settings
from precompute.cluster.executor import run_tasks
from precompute.cluster.tasks import build_tasks
from precompute.core.catalog import stored_names
from precompute.core.errors import UserError
from precompute.core.options import from_options
from precompute.core.store import Store
from precompute.datasets.importers.request import ImportRequest, import_dataset
from precompute.jobs.batch_file import PATH_KEYS, Batch
from precompute.models.request import AddRequest, add_model

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- check
def check_batch(batch: Batch, store: Store) -> list:
    """Check everything the batch names before it writes anything; its tasks, or one UserError listing
    every problem: [[import]]/[[model]] options as their requests take them (plus what the request
    checks before reading its inputs), their input files (for entries that will run: an existing dataset
    or model is skipped), and every dataset and model that [[run]]/[[analyze]] name (the database's, or
    imported/added by the batch). `batch --dry-run` runs it, and so does every real run, first."""
    datasets, models = stored_names(store)
    problems: list[str] = []
    for entry in batch.imports:
        skipped = not entry.get("replace") and entry["name"] in datasets
        problems += _check_input(ImportRequest, entry, f"[[import]] {entry['name']!r}", skipped, models)
    added: set[str] = set()
    for entry in batch.models:
        skipped = not entry.get("replace") and entry["name"] in models
        problems += _check_input(AddRequest, entry, f"[[model]] {entry['name']!r}", skipped, models | added)
        added.add(entry["name"])
    imported = {e["name"] for e in batch.imports}
    named_datasets: dict[str, list[str]] = {}
    named_models: dict[str, list[str]] = {}
    for where, specs in (("[[run]]", batch.runs), ("[[analyze]]", batch.analyses)):
        for spec in specs:
            named_datasets.setdefault(spec.dataset, []).append(where)
            named_models.setdefault(spec.model, []).append(where)
            if getattr(spec, "select_on", None):
                named_datasets.setdefault(spec.select_on, []).append("[[analyze]] select_on")
    problems += _unknown_names("dataset", named_datasets, datasets, imported, "imported by an [[import]]")
    problems += _unknown_names("model", named_models, models, added, "added by a [[model]]")
    tasks: list = []
    try:
        tasks = build_tasks(batch.runs, batch.analyses)
    except UserError as exc:
        problems.append(str(exc).removeprefix("batch file: "))
    if problems:
        where = f"batch file {batch.source}" if batch.source else "batch file"
        raise UserError(
            f"{where}: {len(problems)} problem(s); nothing was imported, added or run:\n"
            + "".join(f"  - {p}\n" for p in problems)
            + "Fix them in the file; `python -m precompute batch FILE --dry-run` checks it again."
        )
    return tasks


def _unknown_names(kind: str, named: dict[str, list[str]], stored: set[str], here: set[str], how: str) -> list[str]:
    known = sorted(stored | here)
    listing = ", ".join(f"{n} (this batch)" if n in here and n not in stored else n for n in known) or "none"
    out = []
    for name, wheres in named.items():
        if name in stored or name in here:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        out.append(
            f"{kind} {name!r} (named by {', '.join(dict.fromkeys(wheres))}) is neither in the database "
            f"nor {how} of this batch"
            + (f" (did you mean {close[0]!r}?)" if close else "")
            + f"; known {kind}s: {listing}"
        )
    return out


def _check_input(request_type, entry: dict, where: str, skipped: bool, models: set[str]) -> list[str]:
    """The problems of one [[import]] or [[model]] entry (see check_batch), without running it."""
    request, out = from_options(request_type, entry, where)
    if request is not None and not skipped:  # (a skipped entry's own checks would read files it does not need)
        try:
            request.check()
        except UserError as exc:
            out.append(f"{where}: {exc}")
    if skipped:  # it exists: the entry is skipped, its files are not needed
        return out
    for key, value in entry.items():  # (files of `exclude_sites` are checked by the import's own checks)
        if key in PATH_KEYS and isinstance(value, str) and not Path(value).exists():
            out.append(f"{where}: `{key}` {value} does not exist")
    reference = entry.get("reference")
    if request_type is AddRequest and entry.get("control") == "random" and reference and reference not in models:
        out.append(
            f"{where}: its reference model {reference!r} is neither in the database nor added by an "
            "earlier [[model]] of this batch"
        )
    return out


def run_batch(
    batch: Batch,
    store: Store,
    *,
    executor: str | None = None,
    scheduler: str | None = None,
    results_dir: Path | None = None,
    workers: int | None = None,
    report: Callable[[str], None] = print,
) -> int:
    """Run the batch (see `execute_batch`), print a summary; the exit code: 0 when every task succeeded."""
    outcome = execute_batch(
        batch, store, executor=executor, scheduler=scheduler, results_dir=results_dir, workers=workers, report=report
    )
    report(outcome.summary())
    for o in outcome.failed:
        report(f"  {o.task_id}: {o.error}")
    return 1 if outcome.failed else 0


def execute_batch(
    batch: Batch,
    store: Store,
    *,
    executor: str | None = None,
    scheduler: str | None = None,
    results_dir: Path | None = None,
    workers: int | None = None,
    client=None,
    report: Callable[[str], None] = print,
):
    """Imports and model additions here, then runs and analyses with the executor; the tasks' BatchReport.

    Options given here (the command line) win over the batch file's; the scheduler defaults to
    $UNITSCOPE_DASK_SCHEDULER. `client` (a distributed.Client) is for callers that hold one already."""
    executor = executor or batch.executor or "local"
    scheduler = scheduler or batch.scheduler or (get_settings().dask_scheduler or None if executor == "dask" else None)
    results = results_dir or (Path(batch.results_dir) if batch.results_dir else None)
    with store.locked():
        tasks = check_batch(batch, store)  # every problem of the file, before anything is written
        _add_inputs(batch, store)
        return run_tasks(
            tasks,
            store,
            executor=executor,
            scheduler=scheduler,
            results_dir=results,
            workers=workers,
            client=client,
            report=report,
        )


def _add_inputs(batch: Batch, store: Store) -> None:
    """Import and add what the batch names (checked already by check_batch); existing ones are skipped
    unless the entry says `replace = true`."""
    datasets, models = stored_names(store)
    for entry in batch.imports:
        if not entry.get("replace") and entry["name"] in datasets:
            log.info("batch: dataset %s exists; skipping its import", entry["name"])
            continue
        request, _ = from_options(ImportRequest, entry, f"[[import]] {entry['name']!r}")
        tables = import_dataset(store, request)
        log.info("batch: imported %s (%d stimuli, %d sites)", entry["name"], len(tables.stimuli), len(tables.sites))
    for entry in batch.models:
        if not entry.get("replace") and entry["name"] in models:
            log.info("batch: model %s exists; skipping", entry["name"])
            continue
        request, _ = from_options(AddRequest, entry, f"[[model]] {entry['name']!r}")
        add_model(store, request)
        log.info("batch: added model %s", entry["name"])
