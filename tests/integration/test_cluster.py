"""The batch on a real Dask cluster (a LocalCluster of two worker processes on loopback) gives the same
tables as the local executor: two tiny datasets x three tiny models (an ONNX graph run by onnxruntime, the
pixels control and a random control) + analyses, including a cross-model one. A worker killed mid-task is
replaced and its task retried; an incomplete result file is never ingested; a complete one left by a
crashed coordinator is; a rerun does nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from backend import schema
from precompute.analyses import registry
from precompute.analyses.registry import Analysis
from precompute.cluster import results
from precompute.cluster.executor import DaskExecutor
from precompute.cluster.tasks import build_tasks
from precompute.cluster.worker import execute_task
from precompute.core.store import Store
from precompute.datasets.writer import write_dataset
from precompute.jobs.batch import execute_batch
from precompute.jobs.batch_file import load_batch
from tests.support.factories import mini_tables
from tests.unit.test_match_onnx import tiny_onnx

distributed = pytest.importorskip("distributed")

DATASETS = ("mini", "mini2")
MODELS = ("tiny", "pixels-8", "random-tiny")
ANALYSES = ("runnerups", "model_comparison", "sleepy")
FLAG_ENV = "UNITSCOPE_TEST_SLEEPY_FLAG"
#: run-specific columns (timings, timestamps) that legitimately differ between two builds
VOLATILE = {"created_at", "inference_s", "match_s", "gather_s"}

BATCH = """
[defaults]
top_k = 5
memory_gb = 2

[[model]]
name = "tiny"
onnx = "{onnx}"
mean = [0.5]
std = [0.5]

[[model]]
name = "pixels-8"
control = "pixels"
input_size = 8

[[model]]
name = "random-tiny"
control = "random"
reference = "tiny"

[[run]]
datasets = {datasets}
models = {models}

[[analyze]]
datasets = {datasets}
models = {models}
analyses = {analyses}
"""


# ---------------------------------------------------------------------------------------------- sleepy
def _run_sleepy(ctx) -> None:
    """A deterministic per-site score; on mini x tiny, when the flag file does not exist yet, it first
    writes its process id there and sleeps (the test kills that worker process then)."""
    flag = Path(os.environ[FLAG_ENV])
    if ctx.dataset == "mini" and ctx.model == "tiny" and not flag.exists():
        results.write_json(flag, {"pid": os.getpid()})
        time.sleep(120)
    best = ctx.best_matches()
    ctx.write_site_scores(pd.DataFrame({"site_id": best["site_id"], "metric": "sleepy", "value": best["r"] * 2}))


SLEEPY = Analysis("sleepy", "test analysis that can be killed mid-task", _run_sleepy)


def register_sleepy() -> None:
    registry.register(SLEEPY)


class SleepyPlugin(distributed.WorkerPlugin):
    """Registers the sleepy analysis on every worker, including the ones that replace a killed worker."""

    def setup(self, worker) -> None:
        register_sleepy()


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A template database with the two datasets, the batch file, and a 2-process LocalCluster."""
    root = tmp_path_factory.mktemp("cluster")
    template = Store(root / "template" / "unitscope.duckdb")
    write_dataset(template, "mini", mini_tables(n_stimuli=48, seed=0))
    write_dataset(template, "mini2", mini_tables(n_stimuli=40, n_v4=3, n_it=4, seed=1))
    tiny_onnx(root / "tiny.onnx")
    batch_file = root / "batch.toml"
    as_toml = lambda names: "[" + ", ".join(f'"{n}"' for n in names) + "]"  # noqa: E731
    batch_file.write_text(
        BATCH.format(
            onnx=root / "tiny.onnx", datasets=as_toml(DATASETS), models=as_toml(MODELS), analyses=as_toml(ANALYSES)
        )
    )
    flag = root / "sleepy.flag"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(FLAG_ENV, str(flag))  # before the workers start: they inherit it
        mp.setitem(registry._REGISTRY, "sleepy", SLEEPY)
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
        )
        client = distributed.Client(cluster)
        client.register_plugin(SleepyPlugin())
        try:
            yield {
                "root": root,
                "template": template.served_path,
                "batch": batch_file,
                "flag": flag,
                "client": client,
                "cluster": cluster,
            }
        finally:
            client.close()
            cluster.close()


def fresh_store(env, name: str) -> Store:
    folder = env["root"] / name
    folder.mkdir()
    shutil.copyfile(env["template"], folder / "unitscope.duckdb")
    return Store(folder / "unitscope.duckdb")


def run(env, store: Store, executor: str, **kw):
    lines: list[str] = []
    report = execute_batch(
        load_batch(env["batch"]),
        store,
        executor=executor,
        client=env["client"] if executor == "dask" else None,
        report=lines.append,
        **kw,
    )
    report.lines = lines
    return report


def tables(store: Store) -> dict[str, pd.DataFrame]:
    """Every table of the served file, without run-specific columns, sorted by every remaining column."""
    con = duckdb.connect(str(store.served_path), read_only=True)
    try:
        out = {}
        for t in schema.TABLES:
            if t.name == "build_info":
                continue
            cols = [c.name for c in t.columns if c.name not in VOLATILE]
            df = con.execute(f'SELECT {", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)} FROM "{t.name}"').df()
            keys = [
                c.name
                for c in t.columns
                if c.name in cols and c.type in ("VARCHAR", "INTEGER", "BIGINT", "SMALLINT", "BOOLEAN")
            ]
            out[t.name] = df.sort_values(keys, kind="stable").reset_index(drop=True) if keys else df
        out["steps_done"] = sorted(
            con.execute("SELECT value FROM build_info WHERE key = 'steps_done'").fetchone()[0].strip("[]").split(", ")
        )
        out["seeds"] = con.execute("SELECT value FROM build_info WHERE key = 'seeds'").fetchone()[0]
        return out
    finally:
        con.close()


def assert_same_tables(a: dict, b: dict) -> None:
    assert a["steps_done"] == b["steps_done"]
    assert a["seeds"] == b["seeds"]
    for name in a:
        if name in ("steps_done", "seeds"):
            continue
        x, y = a[name], b[name]
        assert list(x.columns) == list(y.columns), name
        assert len(x) == len(y), f"{name}: {len(x)} rows vs {len(y)}"
        for col in x.columns:
            xs, ys = x[col], y[col]
            if xs.dtype.kind == "f":
                np.testing.assert_allclose(
                    xs.to_numpy(float), ys.to_numpy(float), atol=1e-4, equal_nan=True, err_msg=f"{name}.{col}"
                )
            elif xs.dtype == object and len(xs) and isinstance(xs.iloc[0], np.ndarray | list):
                for u, v in zip(xs, ys, strict=True):
                    np.testing.assert_allclose(
                        np.asarray(u, float), np.asarray(v, float), atol=1e-4, err_msg=f"{name}.{col}"
                    )
            else:
                assert xs.tolist() == ys.tolist(), f"{name}.{col}"


@pytest.fixture(scope="module")
def local(env):
    env["flag"].write_text("{}")  # the sleepy analysis does not sleep
    store = fresh_store(env, "local")
    report = run(env, store, "local")
    assert not report.failed and report.count("ran") == len(report.outcomes)
    got = tables(store)
    assert len(got["matches"]) > 0 and (got["site_scores"]["metric"] == "sleepy").any()
    assert len(got["model_comparisons"]) > 0
    return got


def build_id(store: Store) -> str:
    con = duckdb.connect(str(store.served_path), read_only=True)
    try:
        return con.execute("SELECT value FROM build_info WHERE key = 'build_id'").fetchone()[0]
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------- tests
def test_dask_with_a_worker_killed_mid_task_gives_the_local_tables_and_a_rerun_does_nothing(env, local):
    """The sleepy task's worker process is SIGKILLed while it runs: Dask restarts the worker and runs the
    task again; the batch completes with every table equal to the local executor's."""
    env["flag"].unlink(missing_ok=True)
    store = fresh_store(env, "dask")
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            try:
                pid = int(json.loads(env["flag"].read_text())["pid"])
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)
                continue
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    report = run(env, store, "dask")
    thread.join(timeout=5)
    assert killed, "the sleepy task never started"
    assert not report.failed, report.failed
    n_tasks = len(DATASETS) * len(MODELS) * len(ANALYSES) + len(DATASETS)  # match + per-model; cross per dataset
    assert report.count("ran") == n_tasks
    sleepy = next(o for o in report.outcomes if o.task_id == "analyze:sleepy:mini:tiny")
    assert not sleepy.worker.endswith(f":{killed[0]}")  # finished by another process than the killed one
    assert len({o.worker for o in report.outcomes}) >= 2  # the work was spread over the workers
    assert any("ETA" in line for line in report.lines) and any("dashboard" in line for line in report.lines)
    assert_same_tables(local, tables(store))
    results_dir = store.served_path.parent / "cluster-results"
    assert not list(results_dir.glob("tasks/*/attempt-*/manifest.json"))  # ingested results removed
    before = build_id(store)
    again = run(env, store, "dask")
    assert again.count("skipped") == n_tasks and build_id(store) == before  # nothing ran, nothing published


def test_incomplete_results_are_never_ingested_and_left_over_complete_ones_are(env, local):
    """A coordinator crashed after the workers finished: the next run ingests complete result files
    (without running the task again) and recomputes the tasks whose files are incomplete."""
    store = fresh_store(env, "crashed")
    batch = load_batch(env["batch"])
    batch.runs = [r for r in batch.runs if r.dataset == "mini2"]
    batch.analyses = []
    from precompute.jobs.batch import _add_inputs

    _add_inputs(batch, store)
    tasks = {t.task_id: t for t in build_tasks(batch.runs, batch.analyses)}
    results_dir = store.served_path.parent / "cluster-results"
    executor = DaskExecutor(scheduler=None, results_dir=results_dir, client=env["client"], report=lambda _: None)
    left = {}
    for task_id in tasks:
        prep = executor._prepare(tasks[task_id], store)
        left[task_id] = results_dir / execute_task(prep.spec)["attempt"]  # as a worker would, in this process
    # pixels-8: its manifest was never written; tiny: a table file truncated after the manifest
    (left["match:mini2:pixels-8"] / results.MANIFEST).unlink()
    victim = left["match:mini2:tiny"] / "matches.parquet"
    victim.write_bytes(victim.read_bytes()[:100])
    assert results.read_complete(left["match:mini2:pixels-8"]) is None
    assert results.read_complete(left["match:mini2:tiny"]) is None
    assert results.read_complete(left["match:mini2:random-tiny"]) is not None

    lines: list[str] = []
    report = execute_batch(batch, store, executor="dask", client=env["client"], report=lines.append)
    states = {o.task_id: o.state for o in report.outcomes}
    assert states == {"match:mini2:random-tiny": "recovered", "match:mini2:pixels-8": "ran", "match:mini2:tiny": "ran"}
    got = tables(store)
    for name in ("matches", "layer_matches", "featuremap_matches", "unit_activations", "match_runs"):
        mine = got[name].reset_index(drop=True)
        ref = local[name][local[name]["dataset"] == "mini2"].reset_index(drop=True)
        assert_same_tables({"t": ref, "steps_done": [], "seeds": ""}, {"t": mine, "steps_done": [], "seeds": ""})
    assert not list(results_dir.glob("tasks/*"))


def test_the_command_line_reaches_a_scheduler_by_address(env, tmp_path):
    """`python -m precompute batch FILE --executor dask --scheduler ADDRESS`, in a process with no Dask client
    of its own yet (the path a lab uses), runs a task on the cluster and ingests it."""
    import subprocess
    import sys

    store = fresh_store(env, "cli")
    batch = tmp_path / "one.toml"
    batch.write_text(
        '[[model]]\nname = "pixels-8"\ncontrol = "pixels"\ninput_size = 8\n\n'
        '[[run]]\ndataset = "mini2"\nmodel = "pixels-8"\ntop_k = 3\nmemory_gb = 2\n'
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "precompute",
            "--db",
            str(store.served_path),
            "batch",
            str(batch),
            "--executor",
            "dask",
            "--scheduler",
            env["cluster"].scheduler_address,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "match:mini2:pixels-8" in done.stdout + done.stderr
    with duckdb.connect(str(store.served_path), read_only=True) as con:
        assert (
            con.execute("SELECT count(*) FROM match_runs WHERE dataset = 'mini2' AND model = 'pixels-8'").fetchone()[0]
            == 1
        )
        n_sites = con.execute("SELECT count(*) FROM sites WHERE dataset = 'mini2'").fetchone()[0]
        assert (
            con.execute("SELECT count(*) FROM matches WHERE dataset = 'mini2' AND model = 'pixels-8'").fetchone()[0]
            == 3 * n_sites
        )
