"""Fault injection for the precompute job: SIGKILL it at a named failpoint, or at a random time, and check.

What must hold after every kill (DESIGN.md, Storage): the served file is byte-identical to what it was
before the command started, or it is a complete newer build that a read-only connection opens and that
records more steps; nothing left behind blocks a rerun; and running the same command again finishes
with the same result as a run that was never interrupted.

`kill_at` kills at a named failpoint (precompute/core/failpoints.py): deterministic, what
tests/integration/test_deploy_faults.py does at every failpoint. `kill_once` kills after a delay:
the random-time soak of benchmarks/bench_faults.py. Both on tiny data that `write_folder_dataset` writes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def write_folder_dataset(
    root: Path, *, n_stimuli: int = 200, n_sites: int = 20, n_reps: int = 4, seed: int = 0
) -> Path:
    """A valid `--format folder` dataset (docs/import-your-data.md): PNGs, stimuli/sites/trials CSVs."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    ids = [f"s{i:04d}" for i in range(n_stimuli)]
    for sid in ids:
        Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8)).save(root / "images" / f"{sid}.png")
    pd.DataFrame(
        {
            "stimulus_id": ids,
            "filename": [f"images/{s}.png" for s in ids],
            "category": [f"c{i % 4}" for i in range(n_stimuli)],
            "object": [f"o{i % 8}" for i in range(n_stimuli)],
        }
    ).to_csv(root / "stimuli.csv", index=False)
    sites = [f"e{k:03d}" for k in range(n_sites)]
    pd.DataFrame({"site_id": sites, "region": ["V4", "IT"] * (n_sites // 2) + ["IT"] * (n_sites % 2)}).to_csv(
        root / "sites.csv", index=False
    )
    rates = rng.gamma(2.0, 2.0, size=(n_sites, n_stimuli, 1))
    counts = rng.poisson(np.repeat(rates, n_reps, axis=2)).astype(float)
    a, j, r = np.meshgrid(np.arange(n_sites), np.arange(n_stimuli), np.arange(n_reps), indexing="ij")
    pd.DataFrame(
        {
            "site_id": np.array(sites)[a.ravel()],
            "stimulus_id": np.array(ids)[j.ravel()],
            "repetition": r.ravel() + 1,
            "response": counts.ravel(),
        }
    ).to_csv(root / "trials.csv", index=False)
    (root / "dataset.json").write_text(json.dumps({"title": "Fault-injection set", "visual_degrees": 8}))
    return root


def _environment(env: dict | None) -> dict[str, str]:
    """os.environ with `env` applied: a value of None removes the variable."""
    out = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = str(value)
    return out


def precompute(db: Path, *args: str, env: dict | None = None, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m precompute --db DB ...` to completion (`env`: variables to set, or to unset with None).

    `timeout_s` only bounds the wait for a command that hangs; no verdict depends on how long it took."""
    return subprocess.run(
        [sys.executable, "-m", "precompute", "--db", str(db), *args],
        cwd=PROJECT_ROOT,
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def read_build(db: Path) -> tuple[str, list[str]]:
    """(build id, steps done) of a database file, opened read-only (raises when unreadable)."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.execute("ATTACH '{}' AS d (READ_ONLY)".format(str(db).replace("'", "''")))
        rows = dict(con.execute("SELECT key, value FROM d.build_info").fetchall())
        con.execute("SELECT count(*) FROM d.datasets").fetchone()
    finally:
        con.close()
    return rows.get("build_id", ""), json.loads(rows.get("steps_done", "[]"))


# ---------------------------------------------------------------------------------------------- failpoints
#: columns that record when or how fast a run went, not what it computed
VOLATILE_COLUMNS = frozenset({"created_at", "inference_s", "match_s", "gather_s"})
#: build_info entries that differ between two runs of the same command (ids, times, versions)
VOLATILE_KEYS = frozenset({"build_id", "published_at", "packages", "commit_id"})
#: build_info entries (JSON objects) whose values hold creation times: only their keys are compared
KEYS_ONLY = frozenset({"analysis_inputs", "cluster_tasks"})


def result_tables(db: Path) -> dict[str, object]:
    """What a build holds, read-only: every table's rows (sorted, without VOLATILE_COLUMNS) and build_info
    without VOLATILE_KEYS (`step:NAME` entries and KEYS_ONLY objects by key only). Reading every row of
    every table is also the check that a build is complete: a torn file raises here."""
    import duckdb

    from backend import schema

    con = duckdb.connect(":memory:")
    try:
        con.execute("ATTACH '{}' AS d (READ_ONLY)".format(str(db).replace("'", "''")))
        out: dict[str, object] = {}
        for table in schema.TABLES:
            if table.name == "build_info":
                continue
            cols = ", ".join(f'"{c}"' for c in table.column_names if c not in VOLATILE_COLUMNS)
            out[table.name] = con.execute(f'SELECT {cols} FROM d."{table.name}" ORDER BY ALL').fetchall()
        info = {}
        for key, value in con.execute("SELECT key, value FROM d.build_info").fetchall():
            if key in VOLATILE_KEYS:
                continue
            if key.startswith("step:"):
                info[key] = "(recorded)"
                continue
            try:
                parsed = json.loads(value)
            except (TypeError, ValueError):
                parsed = value
            if (key in KEYS_ONLY and isinstance(parsed, dict)) or (key == "steps_done" and isinstance(parsed, list)):
                parsed = sorted(parsed)  # keys (values hold times); steps in any order
            info[key] = parsed
        out["build_info"] = info
        return out
    finally:
        con.close()


def _same(a: object, b: object, rel: float = 1e-5, abs_: float = 1e-6) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y, rel, abs_) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], rel, abs_) for k in a)
    return a == b


def differences(expected: dict[str, object], got: dict[str, object]) -> list[str]:
    """How two `result_tables` differ (floats within 1e-5 relative): one line per table or entry."""
    out = []
    for name in sorted(expected.keys() | got.keys()):
        a, b = expected.get(name), got.get(name)
        if name == "build_info" and isinstance(a, dict) and isinstance(b, dict):
            out += [
                f"build_info[{k!r}]: {a.get(k)!r} != {b.get(k)!r}"
                for k in sorted(a.keys() | b.keys())
                if not _same(a.get(k), b.get(k))
            ]
        elif not isinstance(a, list) or not isinstance(b, list) or len(a) != len(b):
            out.append(
                f"{name}: {len(a) if isinstance(a, list) else a!r} rows != {len(b) if isinstance(b, list) else b!r}"
            )
        else:
            bad = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if not _same(x, y)]
            if bad:
                out.append(f"{name}: {len(bad)} of {len(a)} rows differ, first {a[bad[0]]!r} != {b[bad[0]]!r}"[:600])
    return out


def listing(folder: Path) -> list[str]:
    """Every file and folder under `folder`, as sorted relative paths."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


def lock_is_free(lock_path: Path) -> bool:
    """Whether the writer lock file can be taken now (it is released at once)."""
    if not lock_path.exists():
        return True
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


@dataclass
class FailpointKill:
    """A command run with UNITSCOPE_FAILPOINT=point@n, and what it left behind."""

    point: str
    n: int
    returncode: int
    passes: list[str]  # the failpoints it passed, in order (the last one is where it died)
    unchanged: bool  # served file byte-identical to before
    newer_build: bool  # or: a complete newer build (every table readable, more or the same steps)
    stderr_tail: str
    problems: list[str] = field(default_factory=list)


def kill_at(
    db: Path,
    args: list[str],
    point: str,
    n: int = 1,
    *,
    env: dict | None = None,
    log_path: Path,
    timeout_s: float = 300,
) -> FailpointKill:
    """Run `precompute --db DB ARGS` with UNITSCOPE_FAILPOINT=point@n and check what the kill left:

    - it died by SIGKILL exactly at the n-th pass of `point` (the failpoint log ends there);
    - when it had not passed `publish.renamed`, the served file is byte-identical to before; when it had,
      the served file is a complete newer build (a new build id, every table readable, no step lost);
    - the writer lock is free.
    Each failed check is a line in `problems`."""
    from precompute.core.failpoints import ENV, LOG_ENV

    before_hash = sha256(db) if db.exists() else None
    before_build, before_steps = read_build(db) if db.exists() else ("", [])
    log_path.unlink(missing_ok=True)
    done = precompute(db, *args, env={**(env or {}), ENV: f"{point}@{n}", LOG_ENV: str(log_path)}, timeout_s=timeout_s)
    passes = log_path.read_text().split() if log_path.exists() else []
    unchanged = before_hash is not None and db.exists() and sha256(db) == before_hash
    kill = FailpointKill(point, n, done.returncode, passes, unchanged, False, done.stderr[-3000:])
    if done.returncode != -signal.SIGKILL:
        kill.problems.append(
            f"exit {done.returncode}, not SIGKILL at {point}@{n} (passed {passes.count(point)} "
            f"times); stderr: {kill.stderr_tail[-1500:]}"
        )
        return kill
    if not passes or passes[-1] != point or passes.count(point) != n:
        kill.problems.append(f"killed, but not at {point}@{n}: the failpoint log ends {passes[-3:]}")
    if not unchanged:
        try:
            build, steps = read_build(db)
            result_tables(db)
        except Exception as exc:  # any failure to read it is the finding
            kill.problems.append(f"the served file is neither the old build nor a readable one: {exc!r}")
        else:
            kill.newer_build = build != before_build and set(before_steps) <= set(steps)
            if not kill.newer_build:
                kill.problems.append(
                    f"the served file changed but is not a newer build (build {build}, was "
                    f"{before_build}; steps {steps}, were {before_steps})"
                )
    published = "publish.renamed" in passes
    if not published and not unchanged:
        kill.problems.append("the served file changed although the killed process never renamed a new build in")
    if published and unchanged:
        kill.problems.append("the killed process renamed a new build in, yet the served file is the old one")
    lock = db.with_name(db.name.removesuffix(".duckdb") + ".work.lock")
    if not lock_is_free(lock):
        kill.problems.append(f"the writer lock {lock.name} is still held after the kill")
    return kill


# ---------------------------------------------------------------------------------------------- random times
@dataclass
class KillOutcome:
    delay_s: float
    finished_first: bool  # the command ended before the kill
    unchanged: bool  # served file byte-identical to before
    newer_build: bool  # or: a complete, readable newer build
    leftovers: list[str]  # temporary files the killed process left beside the served file


def kill_once(db: Path, args: list[str], delay_s: float, env: dict | None = None) -> KillOutcome:
    """Start `precompute --db DB ARGS`, SIGKILL it after `delay_s`, and check the served file."""
    before_hash = sha256(db) if db.exists() else None
    before_build, before_steps = read_build(db) if db.exists() else ("", [])
    before_files = set(os.listdir(db.parent))
    proc = subprocess.Popen(
        [sys.executable, "-m", "precompute", "--db", str(db), *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay_s)
    finished = proc.poll() is not None
    if not finished:
        proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    unchanged = before_hash is not None and db.exists() and sha256(db) == before_hash
    newer = False
    if not unchanged and db.exists():
        build, steps = read_build(db)  # raises if the served file is not a readable database
        newer = build != before_build and set(before_steps) <= set(steps)
    leftovers = sorted(f for f in set(os.listdir(db.parent)) - before_files if ".publish-" in f or ".tmp-" in f)
    return KillOutcome(delay_s, finished, unchanged, newer, leftovers)


def random_delays(rng: random.Random, n: int, low_s: float, high_s: float) -> list[float]:
    return [rng.uniform(low_s, high_s) for _ in range(n)]
