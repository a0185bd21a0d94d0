"""Fault injection for the precompute job: SIGKILL it at random points and check the served database.

What must hold after every kill (DESIGN.md, Storage): the served file is byte-identical to what it was
before the command started, or it is a complete newer build that a read-only connection opens and that
records more steps; and running the same command again finishes. Used by tests/integration and
benchmarks/bench_faults.py on tiny data they write.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
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


def write_folder_dataset(root: Path, *, n_stimuli: int = 200, n_sites: int = 20, n_reps: int = 4,
                         seed: int = 0) -> Path:
    """A valid `--format folder` dataset (docs/import-your-data.md): PNGs, stimuli/sites/trials CSVs."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    ids = [f"s{i:04d}" for i in range(n_stimuli)]
    for sid in ids:
        Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8)).save(root / "images" / f"{sid}.png")
    pd.DataFrame({"stimulus_id": ids, "filename": [f"images/{s}.png" for s in ids],
                  "category": [f"c{i % 4}" for i in range(n_stimuli)],
                  "object": [f"o{i % 8}" for i in range(n_stimuli)]}).to_csv(root / "stimuli.csv", index=False)
    sites = [f"e{k:03d}" for k in range(n_sites)]
    pd.DataFrame({"site_id": sites, "region": ["V4", "IT"] * (n_sites // 2) + ["IT"] * (n_sites % 2)}).to_csv(
        root / "sites.csv", index=False)
    rates = rng.gamma(2.0, 2.0, size=(n_sites, n_stimuli, 1))
    counts = rng.poisson(np.repeat(rates, n_reps, axis=2)).astype(float)
    a, j, r = np.meshgrid(np.arange(n_sites), np.arange(n_stimuli), np.arange(n_reps), indexing="ij")
    pd.DataFrame({"site_id": np.array(sites)[a.ravel()], "stimulus_id": np.array(ids)[j.ravel()],
                  "repetition": r.ravel() + 1, "response": counts.ravel()}).to_csv(root / "trials.csv", index=False)
    (root / "dataset.json").write_text(json.dumps({"title": "Fault-injection set", "visual_degrees": 8}))
    return root


def precompute(db: Path, *args: str, env: dict | None = None, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m precompute --db DB ...` to completion."""
    return subprocess.run([sys.executable, "-m", "precompute", "--db", str(db), *args], cwd=PROJECT_ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout_s)


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
    proc = subprocess.Popen([sys.executable, "-m", "precompute", "--db", str(db), *args], cwd=PROJECT_ROOT,
                            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
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
    leftovers = sorted(f for f in set(os.listdir(db.parent)) - before_files
                       if ".publish-" in f or ".tmp-" in f)
    return KillOutcome(delay_s, finished, unchanged, newer, leftovers)


def random_delays(rng: random.Random, n: int, low_s: float, high_s: float) -> list[float]:
    return [rng.uniform(low_s, high_s) for _ in range(n)]
