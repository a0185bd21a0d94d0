"""TOML batch files: their format (BATCH_HELP), reading and checking their structure, and the entries they
hold (Batch: imports, models, RunSpec per dataset x model, AnalyzeSpec), with no database.

batch.py checks a Batch against the database and runs it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from precompute.analyses.registry import DEFAULT_SEED, PROTOCOLS
from precompute.core.errors import UserError
from precompute.datasets.importers.selection import looks_like_id_file
from precompute.match.engine import DEFAULT_TOP_K

BATCH_HELP = """Run a TOML batch file: every [[import]], then every [[model]], then every [[run]] and [[analyze]].

    executor = "local"              # optional: local (default) or dask (docs/cluster.md)
    scheduler = "tcp://host:8786"   # optional, dask: the scheduler (none: a local cluster on this machine)
    results_dir = "/shared/results" # optional, dask: folder shared with the workers (default: beside the db)

    [defaults]                      # optional, for every [[run]]
    top_k = 100
    memory_gb = 8.0

    [[import]]                      # optional: the options of `datasets import`, without dashes
    name = "majajhong2015"
    format = "hvm-hdf5"
    path = "/data/ventral_neural_data.hdf5"
    preset = "majajhong2015"        # true/false for flags; lists for multi-value options
    exclude_sites = ["V4-00*", "bad-sites.txt"]   # site-id globs, ids, or files of ids (one per line)

    [[model]]                       # optional: `models add NAME` and its options
    name = "resnet-50"
    zoo = "resnet50"

    [[run]]                         # datasets x models, as `run` does
    datasets = ["synthetic-hvm", "majajhong2015"]   # or dataset = "..."
    models = ["efficientnet-lite0", "resnet-50"]     # or model = "..."
    top_k = 100                     # optional: top_k, memory_gb, force
    force = false

    [[analyze]]                     # optional: analyses x datasets x models, as `analyze` does
    datasets = ["synthetic-hvm"]    # or dataset = "..."
    models = ["efficientnet-lite0"] # or model = "..."
    analyses = ["neural_correlation", "runnerups"]  # optional (default: all); cross-model ones run once
    protocol = "default"            # optional: protocol, seed, force
    seed = 0

    [[analyze]]                     # cross_dataset: each site's best unit on one dataset, scored on another
    dataset = "hvm-b"               # scored here
    model = "efficientnet-lite0"
    analyses = ["cross_dataset"]
    select_on = "hvm-a"             # selected here (matched with the same model, sharing site ids)

Imports and models that already exist are skipped (add `replace = true` to an [[import]] to redo it);
runs already done are skipped unless force, and analyses already done on the same inputs. An analysis
runs after the [[run]] of its (dataset, model) (cross_dataset also after the [[run]] of its select_on
dataset; it runs on the coordinator, as it reads two datasets). Relative paths are relative to the batch
file's folder: path, assembly, stimuli, images, onnx, weights, and the exclude_sites values that are files
there or look like a path (a '/', or ending in .txt/.csv; globs such as "V4-00*" stay as they are).

The whole file is checked before anything is written, and --dry-run does only that check: every
[[import]] and [[model]] option as its command parses it, their files (for entries that will run), and
every dataset and model that [[run]] and [[analyze]] name (select_on included) must be in the database or
imported/added by this batch. Every problem is listed in one message; the database is left unchanged.
A task that fails is reported, the tasks that depend on it are not run, the others go on, and the
command exits with status 1.
"""

RUN_KEYS = {"dataset", "datasets", "model", "models", "top_k", "memory_gb", "force"}
ANALYZE_KEYS = {"dataset", "datasets", "model", "models", "analyses", "protocol", "seed", "force", "select_on"}
DEFAULT_KEYS = {"top_k", "memory_gb", "force"}
SETTING_KEYS = {"executor", "scheduler", "results_dir"}
TOP_KEYS = {"defaults", "import", "model", "run", "analyze", *SETTING_KEYS}
PATH_KEYS = {"path", "assembly", "stimuli", "images", "onnx", "weights"}
#: list-valued options whose elements may be files: `exclude_sites` takes site-id globs or files of ids
LIST_PATH_KEYS = {"exclude_sites"}


@dataclass(frozen=True)
class RunSpec:
    dataset: str
    model: str
    top_k: int = DEFAULT_TOP_K
    memory_gb: float | None = None
    force: bool = False


@dataclass(frozen=True)
class AnalyzeSpec:
    dataset: str
    model: str
    analyses: tuple[str, ...] = ()  # empty: every registered analysis
    protocol: str = "default"
    seed: int = 0
    force: bool = False
    select_on: str | None = None  # cross_dataset's dataset of selection (its `--select-on`)


@dataclass
class Batch:
    imports: list[dict] = field(default_factory=list)
    models: list[dict] = field(default_factory=list)
    runs: list[RunSpec] = field(default_factory=list)
    analyses: list[AnalyzeSpec] = field(default_factory=list)
    executor: str | None = None
    scheduler: str | None = None
    results_dir: str | None = None
    source: str | None = None  # the batch file, for messages

    def describe(self) -> list[str]:
        lines = [f"import {d['name']} ({d.get('format', '?')})" for d in self.imports]
        lines += [f"model  {d['name']}" for d in self.models]
        lines += [
            f"run    {r.dataset} x {r.model} (top_k {r.top_k}"
            + (f", memory {r.memory_gb} GiB" if r.memory_gb else "")
            + (", force" if r.force else "")
            + ")"
            for r in self.runs
        ]
        lines += [
            f"analyze {', '.join(a.analyses) or 'all analyses'} on {a.dataset} x {a.model} "
            f"(protocol {a.protocol}, seed {a.seed}"
            + (f", selected on {a.select_on}" if a.select_on else "")
            + (", force" if a.force else "")
            + ")"
            for a in self.analyses
        ]
        if self.executor:
            lines.append(f"executor {self.executor}" + (f" at {self.scheduler}" if self.scheduler else ""))
        return lines


def _names(entry: dict, one: str, many: str, where: str) -> list[str]:
    if (one in entry) == (many in entry):
        raise UserError(f"{where}: give exactly one of `{one}` or `{many}`")
    value = [entry[one]] if one in entry else entry[many]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise UserError(f"{where}: `{many}` must be a non-empty list of names")
    return value


def parse_batch(data: dict, base_dir: Path | None = None) -> Batch:
    """Check a parsed TOML document and expand its runs (datasets x models).

    Every problem of the file's structure is reported, in one UserError (not only the first)."""
    problems: list[str] = []

    def attempt(parse, *args):
        try:
            return parse(*args)
        except UserError as exc:
            problems.append(str(exc).removeprefix("batch file: "))
            return None

    unknown = set(data) - TOP_KEYS
    if unknown:
        problems.append(f"unknown tables {sorted(unknown)}; use {sorted(TOP_KEYS)}")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict) or set(defaults) - DEFAULT_KEYS:
        problems.append(f"[defaults] may only set {sorted(DEFAULT_KEYS)}")
        defaults = {}
    batch = Batch()
    for kind, target in (("import", batch.imports), ("model", batch.models)):
        for i, entry in enumerate(_tables(data, kind, problems)):
            parsed = attempt(_parse_input, kind, i, entry, base_dir)
            if parsed is not None:
                target.append(parsed)
    for i, entry in enumerate(_tables(data, "run", problems)):
        batch.runs += attempt(_parse_run, i, entry, defaults) or []
    for i, entry in enumerate(_tables(data, "analyze", problems, plural="analyses")):
        batch.analyses += attempt(_parse_analyze, i, entry) or []
    problems += _parse_settings(data, batch, base_dir)
    if len(problems) == 1:
        raise UserError(f"batch file: {problems[0]}")
    if problems:
        raise UserError(f"batch file: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems))
    return batch


def _tables(data: dict, kind: str, problems: list[str], plural: str | None = None) -> list:
    """The file's [[kind]] entries (a problem, and none, when `kind` is not written as an array of tables)."""
    entries = data.get(kind, [])
    if not isinstance(entries, list):
        problems.append(f"{plural or kind + 's'} are written [[{kind}]]")
        return []
    return entries


def _parse_settings(data: dict, batch: Batch, base_dir: Path | None) -> list[str]:
    """Set the batch's executor, scheduler and results folder (relative to the file); their problems."""
    problems = []
    for key in SETTING_KEYS:
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            problems.append(f"`{key}` must be a non-empty string")
            continue
        if key == "results_dir" and value is not None and base_dir is not None:
            value = str((base_dir / value).resolve())
        setattr(batch, key, value)
    if batch.executor not in (None, "local", "dask"):
        problems.append(f'executor must be "local" or "dask", not {batch.executor!r}')
    return problems


def _parse_input(kind: str, i: int, entry, base_dir: Path | None) -> dict:
    """One [[import]] or [[model]] entry, its paths relative to the batch file's folder."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise UserError(f"batch file: [[{kind}]] #{i + 1} needs a `name`")
    if kind == "import" and "format" not in entry:
        raise UserError(f"batch file: [[import]] {entry['name']!r} needs a `format`")
    if base_dir is not None:
        entry = {k: _resolve(k, v, base_dir) for k, v in entry.items()}
    return entry


def _check_keys(entry, keys: set[str], where: str) -> None:
    if not isinstance(entry, dict):
        raise UserError(f"{where}: must be a table")
    bad = set(entry) - keys
    if bad:
        raise UserError(f"{where}: unknown keys {sorted(bad)}; use {sorted(keys)}")


def _parse_run(i: int, entry, defaults: dict) -> list[RunSpec]:
    where = f"batch file: [[run]] #{i + 1}"
    _check_keys(entry, RUN_KEYS, where)
    opts = {**defaults, **{k: v for k, v in entry.items() if k in DEFAULT_KEYS}}
    top_k = opts.get("top_k", DEFAULT_TOP_K)
    memory_gb = opts.get("memory_gb")
    force = opts.get("force", False)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise UserError(f"{where}: top_k must be a positive integer")
    if memory_gb is not None and (not isinstance(memory_gb, int | float) or memory_gb <= 0):
        raise UserError(f"{where}: memory_gb must be a positive number")
    if not isinstance(force, bool):
        raise UserError(f"{where}: force must be true or false")
    return [
        RunSpec(dataset, model, top_k, memory_gb, force)
        for dataset in _names(entry, "dataset", "datasets", where)
        for model in _names(entry, "model", "models", where)
    ]


def _resolve(key: str, value, base_dir: Path):
    """A path option relative to the batch file's folder; list-valued ones (LIST_PATH_KEYS) element-wise,
    only the elements that are files there or look like a path: globs and site ids stay as they are."""
    if key in PATH_KEYS and isinstance(value, str):
        return str((base_dir / value).resolve())
    if key in LIST_PATH_KEYS and isinstance(value, str | list):
        items = [value] if isinstance(value, str) else value
        out = [
            str((base_dir / v).resolve())
            if isinstance(v, str) and v and ((base_dir / v).is_file() or looks_like_id_file(v))
            else v
            for v in items
        ]
        return out[0] if isinstance(value, str) else out
    return value


def _parse_analyze(i: int, entry) -> list[AnalyzeSpec]:
    where = f"batch file: [[analyze]] #{i + 1}"
    _check_keys(entry, ANALYZE_KEYS, where)
    names = entry.get("analyses", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise UserError(f"{where}: `analyses` must be a list of analysis names (see `analyze --help`)")
    protocol, seed = entry.get("protocol", "default"), entry.get("seed", DEFAULT_SEED)
    force = entry.get("force", False)
    if protocol not in PROTOCOLS:
        raise UserError(f"{where}: protocol must be one of {', '.join(map(repr, PROTOCOLS))}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UserError(f"{where}: seed must be an integer")
    if not isinstance(force, bool):
        raise UserError(f"{where}: force must be true or false")
    select_on = entry.get("select_on")
    if select_on is not None and (not isinstance(select_on, str) or not select_on):
        raise UserError(f"{where}: select_on must be a dataset name (cross_dataset's dataset of selection)")
    out = []
    for dataset in _names(entry, "dataset", "datasets", where):
        if select_on == dataset:
            raise UserError(
                f"{where}: select_on names the dataset itself ({dataset!r}); name another "
                "dataset that shares site ids with it"
            )
        for model in _names(entry, "model", "models", where):
            out.append(AnalyzeSpec(dataset, model, tuple(names), protocol, seed, force, select_on))
    return out


def load_batch(path: Path) -> Batch:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"batch file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"batch file {path} is not valid TOML: {exc}") from None
    batch = parse_batch(data, path.parent)
    batch.source = str(path)
    return batch
