"""The precompute job SIGKILLed at every named failpoint (precompute/core/failpoints.py) during `datasets
import`, `run`, `analyze` and a `batch` on a Dask cluster: deterministic, no timing involved.

An uninterrupted run of each command, with UNITSCOPE_FAILPOINT_LOG, says which failpoints it passes and
how often, and gives the reference result. Then, for every failpoint in the registry (a new one is
tested by itself), every command that passes it is killed there, at its first pass and at its last:

- the process died by SIGKILL at that very pass (the failpoint log ends there);
- the served file is byte-identical to before (no new build was renamed in yet) or a complete newer
  build (a new build id, every table readable, no step lost), and the writer lock is free;
- the same command run again exits 0, its result (every table, build_info's stable entries) equals the
  uninterrupted run's, and the data folder holds the same files: no temporary copy, WAL or result
  folder left behind.

A failpoint that none of these commands passes fails its test (dead code, or a registry entry with no
call). The random-time kills stay in benchmarks/bench_faults.py as a soak.
"""

from __future__ import annotations

import collections
import shutil
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.faults import differences, kill_at, listing, precompute, result_tables, write_folder_dataset
from precompute.core import failpoints

pytestmark = pytest.mark.slow

#: variables of the caller's environment that would change what the commands do
CLEARED = (
    "UNITSCOPE_FAILPOINT",
    "UNITSCOPE_FAILPOINT_LOG",
    "UNITSCOPE_DB",
    "UNITSCOPE_RESULTS_DIR",
    "UNITSCOPE_DASK_SCHEDULER",
    "UNITSCOPE_BATCH",
)
#: cases run side by side (each a killed command, then its rerun, in a folder of its own)
PARALLEL = 2

BATCH = """
[defaults]
top_k = 10
memory_gb = 2

[[run]]
dataset = "base"
model = "px"

[[analyze]]
dataset = "base"
model = "px"
analyses = ["neural_correlation"]
"""


@dataclass(frozen=True)
class Command:
    name: str
    start: str  # the data folder it starts from (World.states)
    args: tuple[str, ...]


@dataclass
class Reference:
    passes: collections.Counter  # failpoint -> how many times the uninterrupted run passed it
    tables: dict
    files: list[str]


@dataclass
class World:
    root: Path
    states: dict[str, Path]
    commands: dict[str, Command]
    references: dict[str, Reference]

    def env(self, data: Path) -> dict:
        return command_env(self.root, data)


def command_env(root: Path, data: Path) -> dict:
    """The variables a command runs with: its own data folder, a private engine lock (a matching job of
    another checkout on this machine must not make it wait), nothing of the caller's that changes it."""
    return {**dict.fromkeys(CLEARED), "UNITSCOPE_DATA": str(data), "UNITSCOPE_ENGINE_LOCK": str(root / "engine.lock")}


def _ok(done, what: str) -> None:
    assert done.returncode == 0, f"{what}: exit {done.returncode}\n{done.stderr[-3000:]}"


# long: one fixture builds the whole world every fault test starts from, step by step
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    distributed = pytest.importorskip("distributed")
    root = tmp_path_factory.mktemp("failpoints")
    lab = write_folder_dataset(root / "lab", n_stimuli=64, n_sites=8)
    (root / "batch.toml").write_text(BATCH)

    def env(data: Path) -> dict:
        return command_env(root, data)

    def db(folder: Path) -> Path:
        return folder / "unitscope.duckdb"

    # start states: "added" (dataset base, model px), "served_only" (the same, without a working file: the
    # served file copied to a new server), "matched" (added + run + neural_correlation)
    added = root / "states" / "added"
    _ok(
        precompute(
            db(added), "datasets", "import", "--name", "base", "--format", "folder", "--path", str(lab), env=env(added)
        ),
        "import base",
    )
    _ok(
        precompute(db(added), "models", "add", "px", "--control", "pixels", "--input-size", "16", env=env(added)),
        "models add px",
    )
    served_only = root / "states" / "served_only"
    served_only.mkdir(parents=True)
    shutil.copyfile(db(added), db(served_only))
    matched = root / "states" / "matched"
    shutil.copytree(added, matched)
    _ok(
        precompute(
            db(matched),
            "run",
            "--dataset",
            "base",
            "--model",
            "px",
            "--top-k",
            "10",
            "--memory-gb",
            "2",
            env=env(matched),
        ),
        "run",
    )
    _ok(
        precompute(
            db(matched),
            "analyze",
            "--dataset",
            "base",
            "--model",
            "px",
            "--only",
            "neural_correlation",
            env=env(matched),
        ),
        "analyze",
    )

    with pytest.MonkeyPatch.context() as mp:
        for name in CLEARED:  # the workers inherit this environment: they must never be killed themselves
            mp.delenv(name, raising=False)
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
    try:
        commands = {
            c.name: c
            for c in (
                Command(
                    "import",
                    "served_only",
                    ("datasets", "import", "--name", "second", "--format", "folder", "--path", str(lab), "--replace"),
                ),
                Command(
                    "run", "added", ("run", "--dataset", "base", "--model", "px", "--top-k", "10", "--memory-gb", "2")
                ),
                Command(
                    "analyze",
                    "matched",
                    ("analyze", "--dataset", "base", "--model", "px", "--only", "neural_correlation", "--force"),
                ),
                Command(
                    "batch",
                    "added",
                    ("batch", str(root / "batch.toml"), "--executor", "dask", "--scheduler", cluster.scheduler_address),
                ),
            )
        }
        states = {"added": added, "served_only": served_only, "matched": matched}
        references = {}
        for command in commands.values():
            folder = root / "reference" / command.name
            shutil.copytree(states[command.start], folder)
            log = root / "reference" / f"{command.name}.log"
            _ok(
                precompute(db(folder), *command.args, env={**env(folder), failpoints.LOG_ENV: str(log)}),
                f"{command.name} (reference)",
            )
            references[command.name] = Reference(
                collections.Counter(log.read_text().split()), result_tables(db(folder)), listing(folder)
            )
        yield World(root, states, commands, references)
    finally:
        cluster.close()


def kill_and_rerun(world: World, command: Command, point: str, n: int) -> list[str]:
    """One case: kill `command` at the n-th pass of `point`, check, rerun, compare. Returns the problems."""
    label = f"{command.name} killed at {point}@{n}"
    try:
        folder = world.root / "cases" / f"{command.name}-{point}-{n}"
        shutil.copytree(world.states[command.start], folder)
        db = folder / "unitscope.duckdb"
        env = world.env(folder)
        kill = kill_at(db, list(command.args), point, n, env=env, log_path=folder.parent / f"{folder.name}.log")
        problems = [f"{label}: {p}" for p in kill.problems]
        if kill.returncode != -9:
            return problems
        rerun = precompute(db, *command.args, env=env)
        if rerun.returncode != 0:
            return [*problems, f"{label}: the rerun failed (exit {rerun.returncode}): {rerun.stderr[-2000:]}"]
        reference = world.references[command.name]
        problems += [
            f"{label}, then rerun: result differs from the uninterrupted run: {d}"
            for d in differences(reference.tables, result_tables(db))
        ]
        files = listing(folder)
        if files != reference.files:
            problems.append(
                f"{label}, then rerun: the data folder differs from the uninterrupted run's: extra "
                f"{sorted(set(files) - set(reference.files))}, missing "
                f"{sorted(set(reference.files) - set(files))}"
            )
        if not problems:
            shutil.rmtree(folder, ignore_errors=True)
        return problems
    except Exception:
        return [f"{label}: {traceback.format_exc()}"]


def test_every_failpoint_of_the_registry_is_passed_by_a_command_under_test(world):
    passed = set().union(*(r.passes for r in world.references.values()))
    assert set(failpoints.POINTS) - passed == set(), "registered failpoints that no command under test passes"
    assert passed <= set(failpoints.POINTS)


@pytest.mark.parametrize("point", list(failpoints.POINTS))
def test_sigkill_at_failpoint(world, point):
    cases = [
        (command, n)
        for command in world.commands.values()
        for n in sorted({1, world.references[command.name].passes[point]})
        if world.references[command.name].passes[point]
    ]
    assert cases, f"none of {', '.join(world.commands)} passes failpoint {point!r}"
    with ThreadPoolExecutor(PARALLEL) as pool:
        found = pool.map(lambda case: kill_and_rerun(world, case[0], point, case[1]), cases)
        problems = [p for case_problems in found for p in case_problems]
    print(f"\n{point}: killed and reran {', '.join(f'{c.name}@{n}' for c, n in cases)}")
    assert not problems, "\n".join(problems)
