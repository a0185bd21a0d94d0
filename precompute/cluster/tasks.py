"""A batch's units of work as tasks with dependencies, the rows each task owns, and its input hash.

A task is named by the Store step it becomes (`match:D:M`, `analyze:NAME:D:M`, `analyze:NAME:D`), so
the local and the dask executor record the same steps. Dependencies follow the order in which the
local executor runs them (a matching run, then the pair's analyses in registry order, each reading
what the earlier ones wrote; an analysis that reads a second dataset, cross_dataset, also after that
dataset's matching run; a cross-model analysis after every task on its dataset), so a task never
starts before what it reads is in the working database.

A task's *scope* is the (dataset, models) whose rows it may write: every table with a `dataset` and a
model column (`model`, or `model_a`/`model_b` both in the scope). The coordinator replaces exactly
those rows when it ingests the task's result; no two tasks that can run at the same time share a
scope, so the order in which tasks finish does not change the tables.

The input hash says what a result was computed from (the task, its settings that change results, the
dataset's and the models' identities, and for analyses the match runs they read); a result file is only
ingested by a coordinator that computes the same hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from backend import schema
from precompute.analyses import registry
from precompute.core.catalog import inputs_fingerprint
from precompute.core.errors import UserError
from precompute.core.steps import analyze_step, match_step

MATCH = "match"
ANALYZE = "analyze"
#: build_info key: JSON object task id -> input hash of the result the coordinator ingested
INGESTED_KEY = "cluster_tasks"
#: model columns that tie a row to a model (tables with model_a/model_b need both in the scope)
_PAIR_COLUMNS = ("model_a", "model_b")


@dataclass(frozen=True)
class Task:
    """One unit of work. `model` is None for a cross-model analysis (every model matched on the dataset)."""

    task_id: str
    kind: str
    dataset: str
    model: str | None
    deps: tuple[str, ...] = ()
    params: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def force(self) -> bool:
        return bool(self.params.get("force", False))

    def describe(self) -> str:
        if self.kind == MATCH:
            return f"match {self.dataset} x {self.model}"
        target = f"{self.dataset} x {self.model}" if self.model else f"{self.dataset} (all matched models)"
        chosen = "".join(f", {k.replace('_', ' ')} {v}" for k, v in self.params.get("options", {}).items())
        return f"analyze {self.params['analysis']} on {target}{chosen}"

    @property
    def options(self) -> dict[str, str]:
        """Values of the analysis's dataset options (cross_dataset: {"select_on": A}); empty for most."""
        return dict(self.params.get("options", {}))


# ---------------------------------------------------------------------------------------------- graph
def build_tasks(runs: Sequence, analyses: Sequence) -> list[Task]:
    """Tasks of a batch's [[run]] (RunSpec) and [[analyze]] (AnalyzeSpec) entries, in local run order.

    Order: every matching run, then each (dataset, model)'s analyses in registry order, then the
    cross-model analyses per dataset. A task listed twice is kept once (the first; `force` if any
    copy asks for it); the same analysis twice with different settings is a UserError."""

    tasks: dict[str, Task] = {}
    for spec in runs:
        _add(
            tasks,
            Task(
                match_step(spec.dataset, spec.model),
                MATCH,
                spec.dataset,
                spec.model,
                (),
                {"top_k": spec.top_k, "memory_gb": spec.memory_gb, "force": spec.force},
            ),
        )

    order = {name: i for i, name in enumerate(registry.analyses())}
    per_pair, cross = _analysis_tasks(analyses)
    _chain_pair_analyses(tasks, per_pair, order)
    _chain_cross_analyses(tasks, cross, order)
    return list(tasks.values())


def _add(tasks: dict[str, Task], task: Task) -> None:
    """Add `task` to `tasks`; a copy already there is kept (forced if either asks), unless its settings differ."""
    old = tasks.get(task.task_id)
    if old is None:
        tasks[task.task_id] = task
        return
    same = {k: v for k, v in old.params.items() if k not in ("force", "memory_gb")} == {
        k: v for k, v in task.params.items() if k not in ("force", "memory_gb")
    }
    if not same:
        raise UserError(
            f"batch file: {task.describe()} is listed twice with different settings "
            f"({old.params} and {task.params}); keep one"
        )
    if task.force and not old.force:
        tasks[task.task_id] = Task(
            old.task_id, old.kind, old.dataset, old.model, old.deps, {**old.params, "force": True}
        )


def _analysis_tasks(
    analyses: Sequence,
) -> tuple[dict[tuple[str, str], dict[str, Task]], dict[str, dict[str, Task]]]:
    """The [[analyze]] entries' tasks, not yet chained: per (dataset, model) and per dataset (cross-model),
    each by label."""
    per_pair: dict[tuple[str, str], dict[str, Task]] = {}
    cross: dict[str, dict[str, Task]] = {}
    for spec in analyses:
        for a in registry.get_analyses(list(spec.analyses) or None):
            params = _analysis_params(a, spec)
            if params is None:
                continue
            label = a.label(params.get("options"))
            if a.cross_model:
                cross.setdefault(spec.dataset, {})[label] = Task(
                    analyze_step(label, spec.dataset), ANALYZE, spec.dataset, None, (), params
                )
            else:
                pair = per_pair.setdefault((spec.dataset, spec.model), {})
                t = Task(analyze_step(label, spec.dataset, spec.model), ANALYZE, spec.dataset, spec.model, (), params)
                if label in pair:
                    _check_same(pair[label], t)
                    if t.force:
                        pair[label] = t
                else:
                    pair[label] = t
    return per_pair, cross


def _analysis_params(a, spec) -> dict | None:
    """A task's params for analysis `a` of an [[analyze]] entry; None when it is left out (an analysis that
    reads a second dataset, not named, when the entry asks for all analyses)."""
    params = {"analysis": a.name, "protocol": spec.protocol, "seed": spec.seed, "force": spec.force}
    if getattr(a, "dataset_options", ()):  # reads a second dataset, named by an option
        options = {"select_on": spec.select_on} if getattr(spec, "select_on", None) else {}
        missing = a.missing_options(options)
        if missing and spec.analyses:
            raise UserError(
                f"batch file: analysis {a.name!r} on {spec.dataset} x {spec.model} needs "
                f"`{missing[0]}` (the dataset to read besides {spec.dataset!r}) in its [[analyze]]"
            )
        if missing:
            return None  # as `analyze` does for "all analyses"
        params["options"] = options
    return params


def _chain_pair_analyses(
    tasks: dict[str, Task], per_pair: dict[tuple[str, str], dict[str, Task]], order: dict[str, int]
) -> None:
    """Add each (dataset, model)'s analyses in registry order, each after the previous (the first after the
    pair's matching run when the batch has it)."""
    for (dataset, model), named in per_pair.items():
        previous = match_step(dataset, model)
        previous = previous if previous in tasks else None
        for label in sorted(named, key=lambda n: (order[named[n].params["analysis"]], n)):
            t = named[label]
            # An analysis that reads another dataset also waits for that dataset's matching run.
            others = [match_step(d, model) for d in t.params.get("options", {}).values()]
            deps = ((previous,) if previous else ()) + tuple(o for o in others if o in tasks)
            _add(tasks, Task(t.task_id, t.kind, t.dataset, t.model, deps, t.params))
            previous = t.task_id


def _chain_cross_analyses(tasks: dict[str, Task], cross: dict[str, dict[str, Task]], order: dict[str, int]) -> None:
    """Add each dataset's cross-model analyses after every task already on that dataset, in registry order."""
    for dataset, named in cross.items():
        before = tuple(tid for tid, t in tasks.items() if t.dataset == dataset)
        for name in sorted(named, key=order.__getitem__):
            t = named[name]
            _add(tasks, Task(t.task_id, t.kind, t.dataset, None, before, t.params))
            before = (*before, t.task_id)


def _check_same(old: Task, new: Task) -> None:
    if {k: v for k, v in old.params.items() if k != "force"} != {k: v for k, v in new.params.items() if k != "force"}:
        raise UserError(f"batch file: {new.describe()} is listed twice with different settings; keep one")


def check_graph(tasks: Sequence[Task]) -> None:
    """Every dependency names an earlier task (the list is in a valid run order)."""
    seen: set[str] = set()
    for t in tasks:
        missing = [d for d in t.deps if d not in seen]
        if missing:
            raise ValueError(f"task {t.task_id} depends on {missing}, which do not come before it")
        seen.add(t.task_id)


# ---------------------------------------------------------------------------------------------- scope
def scope_filter(table: schema.Table, dataset: str, models: Sequence[str]) -> tuple[str, list] | None:
    """SQL condition (and parameters) selecting the rows of `table` in the scope; None if it has none."""
    cols = table.column_names
    if "dataset" not in cols:
        return None
    marks = ", ".join("?" for _ in models) or "NULL"
    if "model" in cols:
        return f'"dataset" = ? AND "model" IN ({marks})', [dataset, *models]
    if all(c in cols for c in _PAIR_COLUMNS):
        return (f'"dataset" = ? AND "model_a" IN ({marks}) AND "model_b" IN ({marks})', [dataset, *models, *models])
    return None


def snapshot_filter(table: schema.Table, dataset: str, models: Sequence[str]) -> tuple[str, list]:
    """SQL condition selecting what a task on (dataset, models) may read of `table`.

    The scope's rows, the dataset's rows of dataset tables, and every row of the small tables without
    a dataset (build_info, models, layers): a control model may read another model's entries."""
    scoped = scope_filter(table, dataset, models)
    if scoped is not None:
        return scoped
    if "dataset" in table.column_names:
        return '"dataset" = ?', [dataset]
    return "TRUE", []


def scope_tables() -> list[schema.Table]:
    """The tables that have scope rows (what a task may write)."""
    return [t for t in schema.TABLES if scope_filter(t, "", ["x"]) is not None]


# ---------------------------------------------------------------------------------------------- hashing
def _row(con, sql: str, params: list) -> list | None:
    cur = con.execute(sql, params)
    row = cur.fetchone()
    if row is None:
        return None
    return [str(v) for v in row]


def dataset_fingerprint(con, dataset: str) -> list | None:
    """What identifies a dataset's content: its datasets row (a re-import changes created_at)."""
    return _row(
        con,
        "SELECT dataset, created_at, input_hash, n_stimuli, n_sites, seed FROM datasets WHERE dataset = ?",
        [dataset],
    )


def model_fingerprint(con, model: str) -> list | None:
    """What identifies a model: its models row and its control seed (build_info seeds)."""
    row = _row(
        con,
        "SELECT model, kind, family, reference_model, input_size, sha256, created_at FROM models WHERE model = ?",
        [model],
    )
    if row is None:
        return None
    seeds = con.execute("SELECT value FROM build_info WHERE key = 'seeds'").fetchone()
    seed = json.loads(seeds[0]).get(f"model:{model}") if seeds and seeds[0] else None
    return [*row, str(seed)]


def input_hash(con, task: Task, models: Sequence[str]) -> str:
    """sha256 of what the task's result is computed from (see the module docstring)."""
    parts: dict = {
        "task": task.task_id,
        "kind": task.kind,
        "models": list(models),
        "dataset": dataset_fingerprint(con, task.dataset),
        "model_rows": {m: model_fingerprint(con, m) for m in models},
    }
    if task.kind == MATCH:
        parts["top_k"] = task.params["top_k"]
    else:
        parts.update(
            analysis=task.params["analysis"],
            protocol=task.params["protocol"],
            seed=task.params["seed"],
            inputs=inputs_fingerprint(con, task.dataset, list(models)),
        )
        for other in task.options.values():  # a second dataset the analysis reads
            parts.setdefault("other_inputs", {})[other] = inputs_fingerprint(con, other, list(models))
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def file_slug(task_id: str) -> str:
    """A file-system-safe, unique folder name for a task id."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in task_id)[:80]
    return f"{safe}-{hashlib.sha256(task_id.encode()).hexdigest()[:10]}"
