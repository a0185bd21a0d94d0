"""The precompute job killed (SIGKILL) at random points during `datasets import` and `run`: the served
database stays byte-identical (or becomes a complete newer build) and a rerun completes.

Short version of benchmarks/bench_faults.py (3 kills each here, on tiny data this test writes).
"""

from __future__ import annotations

import random
import time

import pytest

from deploy.faults import kill_once, precompute, random_delays, read_build, write_folder_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    folder = write_folder_dataset(root / "lab-data", n_stimuli=160, n_sites=16)
    db = root / "data" / "unitscope.duckdb"
    env = {"UNITSCOPE_DATA": str(root / "data")}
    for args in (["datasets", "import", "--name", "base", "--format", "folder", "--path", str(folder)],
                 ["models", "add", "px", "--control", "pixels", "--input-size", "32"]):
        done = precompute(db, *args, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
    return db, folder, env


@pytest.mark.parametrize("step", ["import", "run"])
def test_sigkill_keeps_the_served_database(lab, step):
    db, folder, env = lab
    if step == "import":
        args = ["datasets", "import", "--name", "second", "--format", "folder", "--path", str(folder), "--replace"]
    else:
        args = ["run", "--dataset", "base", "--model", "px", "--force"]
    # kill within the command's own duration on this machine (a fixed window is too late on a fast one)
    t0 = time.perf_counter()
    assert precompute(db, *args, env=env).returncode == 0
    duration = time.perf_counter() - t0
    rng = random.Random(f"deploy-{step}")
    outcomes = [kill_once(db, args, delay, env) for delay in random_delays(rng, 3, 0.1 * duration, 0.8 * duration)]
    print("\n" + "\n".join(f"{step}: kill at {o.delay_s:.2f} s -> unchanged={o.unchanged} newer={o.newer_build} "
                           f"finished_first={o.finished_first} leftovers={o.leftovers}" for o in outcomes))
    for o in outcomes:
        assert o.unchanged or o.newer_build, o  # never a half-written or unreadable served file
    assert any(not o.finished_first for o in outcomes), "every command ended before its kill: kill earlier"
    done = precompute(db, *args, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    _, steps = read_build(db)
    assert ("dataset:second" if step == "import" else "match:base:px") in steps
