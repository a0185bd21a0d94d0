"""TOML batch files: imports, model additions and runs (datasets x models), done in that order."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from precompute.errors import UserError
from precompute.store import Store

log = logging.getLogger(__name__)

BATCH_HELP = """Run a TOML batch file: every [[import]], then every [[model]], then every [[run]].

    [defaults]                      # optional, for every [[run]]
    top_k = 100
    memory_gb = 8.0

    [[import]]                      # optional: the options of `datasets import`, without dashes
    name = "majajhong2015"
    format = "hvm-hdf5"
    path = "/data/ventral_neural_data.hdf5"
    preset = "majajhong2015"        # true/false for flags; lists for multi-value options

    [[model]]                       # optional: `models add NAME` and its options
    name = "resnet-50"
    zoo = "resnet50"

    [[run]]                         # datasets x models, as `run` does
    datasets = ["synthetic-hvm", "majajhong2015"]   # or dataset = "..."
    models = ["efficientnet-lite0", "resnet-50"]     # or model = "..."
    top_k = 100                     # optional: top_k, memory_gb, force
    force = false

Imports and models that already exist are skipped (add `replace = true` to an [[import]] to redo it);
runs already done are skipped unless force. Relative paths are relative to the batch file's folder.
"""

RUN_KEYS = {"dataset", "datasets", "model", "models", "top_k", "memory_gb", "force"}
DEFAULT_KEYS = {"top_k", "memory_gb", "force"}
TOP_KEYS = {"defaults", "import", "model", "run"}
PATH_KEYS = {"path", "assembly", "stimuli", "images", "onnx", "weights"}


@dataclass(frozen=True)
class RunSpec:
    dataset: str
    model: str
    top_k: int = 100
    memory_gb: float | None = None
    force: bool = False


@dataclass
class Batch:
    imports: list[dict] = field(default_factory=list)
    models: list[dict] = field(default_factory=list)
    runs: list[RunSpec] = field(default_factory=list)

    def describe(self) -> list[str]:
        lines = [f"import {d['name']} ({d.get('format', '?')})" for d in self.imports]
        lines += [f"model  {d['name']}" for d in self.models]
        lines += [f"run    {r.dataset} x {r.model} (top_k {r.top_k}"
                  + (f", memory {r.memory_gb} GiB" if r.memory_gb else "") + (", force" if r.force else "") + ")"
                  for r in self.runs]
        return lines


def _names(entry: dict, one: str, many: str, where: str) -> list[str]:
    if (one in entry) == (many in entry):
        raise UserError(f"{where}: give exactly one of `{one}` or `{many}`")
    value = [entry[one]] if one in entry else entry[many]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise UserError(f"{where}: `{many}` must be a non-empty list of names")
    return value


def parse_batch(data: dict, base_dir: Path | None = None) -> Batch:
    """Check a parsed TOML document and expand its runs (datasets x models)."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise UserError(f"batch file: unknown tables {sorted(unknown)}; use {sorted(TOP_KEYS)}")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict) or set(defaults) - DEFAULT_KEYS:
        raise UserError(f"batch file: [defaults] may only set {sorted(DEFAULT_KEYS)}")
    batch = Batch()
    for kind, target in (("import", batch.imports), ("model", batch.models)):
        for i, entry in enumerate(data.get(kind, [])):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise UserError(f"batch file: [[{kind}]] #{i + 1} needs a `name`")
            if kind == "import" and "format" not in entry:
                raise UserError(f"batch file: [[import]] {entry['name']!r} needs a `format`")
            if base_dir is not None:
                entry = {k: (str((base_dir / v).resolve()) if k in PATH_KEYS and isinstance(v, str) else v)
                         for k, v in entry.items()}
            target.append(entry)
    runs = data.get("run", [])
    if not isinstance(runs, list):
        raise UserError("batch file: runs are written [[run]]")
    for i, entry in enumerate(runs):
        where = f"batch file: [[run]] #{i + 1}"
        if not isinstance(entry, dict):
            raise UserError(f"{where}: must be a table")
        bad = set(entry) - RUN_KEYS
        if bad:
            raise UserError(f"{where}: unknown keys {sorted(bad)}; use {sorted(RUN_KEYS)}")
        opts = {**defaults, **{k: v for k, v in entry.items() if k in DEFAULT_KEYS}}
        top_k = opts.get("top_k", 100)
        memory_gb = opts.get("memory_gb")
        force = opts.get("force", False)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise UserError(f"{where}: top_k must be a positive integer")
        if memory_gb is not None and (not isinstance(memory_gb, int | float) or memory_gb <= 0):
            raise UserError(f"{where}: memory_gb must be a positive number")
        if not isinstance(force, bool):
            raise UserError(f"{where}: force must be true or false")
        for dataset in _names(entry, "dataset", "datasets", where):
            for model in _names(entry, "model", "models", where):
                batch.runs.append(RunSpec(dataset, model, top_k, memory_gb, force))
    return batch


def load_batch(path: Path) -> Batch:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"batch file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"batch file {path} is not valid TOML: {exc}") from None
    return parse_batch(data, path.parent)


def _argv(entry: dict, skip: set[str]) -> list[str]:
    """TOML options -> command-line options (`key_name = v` -> `--key-name v`; true -> a flag)."""
    argv: list[str] = []
    for key, value in entry.items():
        if key in skip or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def _exists(store: Store, table: str, column: str, name: str) -> bool:
    with store.connect() as con:
        return con.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}" = ?', [name]).fetchone()[0] > 0


def _run_command(argv: list[str], store: Store) -> None:
    """Run another area's subcommand through the project's own parser (its options are the contract)."""
    from precompute.cli import build_parser

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        raise UserError(f"batch file: `python -m precompute {' '.join(argv)}` is not a valid command "
                        "(see the message above)") from None
    code = int(args.func(args, store) or 0)
    if code != 0:
        raise UserError(f"batch file: `python -m precompute {' '.join(argv)}` failed (exit {code})")


def run_batch(batch: Batch, store: Store) -> int:
    """Run everything in order; stops at the first failure (finished pairs stay done)."""
    from precompute.match.runner import run_pair

    for entry in batch.imports:
        if not entry.get("replace") and _exists(store, "datasets", "dataset", entry["name"]):
            log.info("batch: dataset %s exists; skipping its import", entry["name"])
            continue
        _run_command(["datasets", "import", *_argv(entry, set())], store)
    for entry in batch.models:
        if not entry.get("replace") and _exists(store, "models", "model", entry["name"]):
            log.info("batch: model %s exists; skipping", entry["name"])
            continue
        _run_command(["models", "add", entry["name"], *_argv(entry, {"name"})], store)
    for spec in batch.runs:
        outcome = run_pair(store, spec.dataset, spec.model, top_k=spec.top_k, memory_gb=spec.memory_gb,
                           force=spec.force)
        state = "already matched" if outcome is None else f"matched in {outcome.match_s:.1f} s"
        print(f"{spec.dataset} x {spec.model}: {state}")
    return 0
