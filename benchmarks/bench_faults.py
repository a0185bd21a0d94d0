"""Fault checks, full versions: SIGKILLed precompute, the served file replaced under load, fuzzed requests.

    .venv/bin/python benchmarks/bench_faults.py [--kills 10] [--swap-seconds 30] [--fuzz 600]

1. kills, a soak: `datasets import` and `run` (tiny data written here) each SIGKILLed at --kills random
   times; after each, the served file must be byte-identical or a complete newer build; then a rerun
   completes with the uninterrupted run's result and removes the temporary files the kills left. The
   deterministic version, a kill at every named failpoint (precompute/core/failpoints.py) of import, run,
   analyze and a Dask batch, is tests/integration/test_deploy_faults.py; this one looks for what no
   failpoint marks.
2. swap: gunicorn (2 workers x 4 threads, shared file cache) serves while a new build is published every
   0.5 s for --swap-seconds; 6 users browse, 2 more reload the Overview page, which shows the build id and
   the dataset title that each build changes. Counts failed requests, responses mixing two builds, and
   responses that started after a publish finished but show an older build.
3. fuzz: --fuzz requests with hostile URL parameters, callback payloads, export names/formats/parameters
   and static paths, in-process, with an audit hook on file opens and a canary file; counts 5xx by kind.
Prints every figure; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bench_kills(work: Path, kills: int) -> bool:
    from deploy.faults import (
        differences,
        kill_once,
        precompute,
        random_delays,
        read_build,
        result_tables,
        write_folder_dataset,
    )

    folder = write_folder_dataset(work / "lab", n_stimuli=400, n_sites=40)
    db = work / "data" / "unitscope.duckdb"
    # a private engine lock: a matching job elsewhere on this machine must not stretch the timings
    env = {"UNITSCOPE_DATA": str(db.parent), "UNITSCOPE_ENGINE_LOCK": str(work / "engine.lock")}
    for args in (
        ["datasets", "import", "--name", "base", "--format", "folder", "--path", str(folder)],
        ["models", "add", "px", "--control", "pixels", "--input-size", "32"],
    ):
        assert precompute(db, *args, env=env).returncode == 0
    ok = True
    for step, args, expect in (
        (
            "import",
            ["datasets", "import", "--name", "second", "--format", "folder", "--path", str(folder), "--replace"],
            "dataset:second",
        ),
        ("run", ["run", "--dataset", "base", "--model", "px", "--force"], "match:base:px"),
    ):
        t0 = time.perf_counter()
        full = precompute(db, *args, env=env)
        full_s = time.perf_counter() - t0
        expected = result_tables(db)
        # from interpreter start-up to the end of the command (repeat runs get quicker: the OS caches files)
        delays = random_delays(random.Random(step), kills, 0.1 * full_s, 0.8 * full_s)
        outcomes = [kill_once(db, args, d, env) for d in delays]
        bad = [o for o in outcomes if not (o.unchanged or o.newer_build)]
        rerun = precompute(db, *args, env=env)
        completed = rerun.returncode == 0 and expect in read_build(db)[1]
        differ = differences(expected, result_tables(db)) if completed else []
        leftovers = sorted({f for o in outcomes for f in o.leftovers})
        remaining = sorted(f for f in os.listdir(db.parent) if ".publish-" in f or ".tmp-" in f)
        print(
            f"kills/{step}: uninterrupted {full_s:.1f} s (exit {full.returncode}); {len(outcomes)} SIGKILLs at "
            f"{min(o.delay_s for o in outcomes):.2f}-{max(o.delay_s for o in outcomes):.2f} s: "
            f"{sum(o.unchanged for o in outcomes)} left the served file byte-identical, "
            f"{sum(o.newer_build for o in outcomes)} found a complete newer build, "
            f"{sum(o.finished_first for o in outcomes)} had finished first, {len(bad)} bad; "
            f"rerun {'completed' if completed else 'FAILED'}"
            + (
                f" with {len(differ)} difference(s) from the uninterrupted run: {differ[:2]}"
                if differ
                else " with the uninterrupted run's result"
            )
            + f"; temp files left by the kills: {len(leftovers)} {leftovers[:4]}, after the rerun: {remaining}"
        )
        ok &= not bad and completed and not differ and not remaining
    return ok


def bench_swap(work: Path, seconds: float) -> bool:
    from benchmarks.bench_load import toy_database
    from deploy.dash_protocol import DashSite
    from deploy.loadcheck import HttpTransport, Recorder, User, run_load
    from deploy.serving import publish_variant, serve_locally
    from precompute.core.store import Store

    db = toy_database(work / "swap")
    store = Store(db)
    env = {
        "UNITSCOPE_DATA": str(db.parent),
        "UNITSCOPE_DB": str(db),
        "UNITSCOPE_CACHE": "filesystem",
        "UNITSCOPE_CACHE_DIR": str(work / "swap-cache"),
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "4",
        "UNITSCOPE_LOG_LEVEL": "WARNING",
        "UNITSCOPE_AUTH_USER": "",
        "UNITSCOPE_AUTH_PASSWORD": "",
    }
    published: dict[str, tuple[int, float]] = {}
    seen: list[tuple[float, str, int]] = []
    lock = threading.Lock()
    stop = threading.Event()
    rec = Recorder()
    with serve_locally(env, log_path=work / "swap-gunicorn.log") as url:
        import requests

        published[requests.get(url + "/health", timeout=30).json()["build_id"]] = (0, 0.0)

        def overview_user(i: int) -> None:
            site = DashSite(HttpTransport(url))
            user = User(HttpTransport(url), site, rec, random.Random(i))

            def check(path, content, started=None):
                text = json.dumps(content)
                build = re.search(r'"children": "([0-9a-f]{32})"', text)
                variant = re.search(r"variant (\d+)", text)
                if build:
                    with lock:
                        seen.append((user.started, build.group(1), int(variant.group(1)) if variant else 0))

            user.on_page = check
            while not stop.is_set():
                user.started = time.monotonic()
                user.open_page("/")

        watchers = [threading.Thread(target=overview_user, args=(i,), daemon=True) for i in range(2)]
        for th in watchers:
            th.start()
        load = threading.Thread(
            target=lambda: rec.samples.extend(
                run_load(lambda: HttpTransport(url), users=6, seconds=seconds, seed=5).samples
            ),
            daemon=True,
        )
        load.start()
        n, t_end = 0, time.monotonic() + seconds
        while time.monotonic() < t_end:
            n += 1
            build = publish_variant(store, n)
            published[build] = (n, time.monotonic())
            time.sleep(0.5)
        load.join(seconds + 120)
        stop.set()
        for th in watchers:
            th.join(120)
    mixed = [s for s in seen if s[1] not in published or published[s[1]][0] != s[2]]
    # a response whose request started after build k was published must show build >= k
    finished = sorted((t, k) for k, t in published.values())
    stale = [
        s for s in seen if s[1] in published and published[s[1]][0] < max([k for t, k in finished if t < s[0]] or [0])
    ]
    errors = rec.errors()
    print(
        f"swap: {n} publishes in {seconds:.0f} s under 8 users: {len(rec.samples)} requests, {len(errors)} failed, "
        f"{len(seen)} Overview responses checked, {len(mixed)} mixed two builds, {len(stale)} showed an older "
        f"build than one published before they started"
    )
    for s in errors[:5]:
        print(f"  ERROR {s.kind} {s.target}: {s.status} {s.error[:160]!r}")
    return not errors and not mixed and not stale


def bench_fuzz(work: Path, n: int) -> bool:
    import importlib

    from benchmarks.bench_load import toy_database
    from deploy.dash_protocol import ROUTER_OUTPUT, DashSite
    from deploy.fuzz import export_names_from, fuzz_cases, run_fuzz
    from deploy.loadcheck import FlaskTransport

    db = toy_database(work / "fuzz")
    os.environ.update(UNITSCOPE_DATA=str(db.parent), UNITSCOPE_DB=str(db), UNITSCOPE_CACHE="null")
    secret = work / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(b"UNITSCOPE-CANARY-bench\n")
    opened: list[str] = []
    active = {"on": False}
    sys.addaudithook(
        lambda ev, a: (
            opened.append(os.fsdecode(a[0]))
            if active["on"] and ev == "open" and a and isinstance(a[0], (str, bytes, os.PathLike))
            else None
        )
    )
    transport = FlaskTransport(importlib.import_module("app").server)
    site = DashSite(transport)
    cases = fuzz_cases(site, export_names_from(site, transport), random.Random(11), n, secret_path=str(secret))
    active["on"] = True
    logging.disable(logging.CRITICAL)  # the app logs each 500's traceback; the figures below say enough
    t0 = time.perf_counter()
    try:
        failures = run_fuzz(transport, cases, forbidden=[b"UNITSCOPE-CANARY-bench", b"root:x:0:0"])
    finally:
        active["on"] = False
        logging.disable(logging.NOTSET)

    def kind(label: str) -> str:
        if label.startswith("GET /export/"):
            return "export"
        if label.startswith("POST"):
            return "page URL" if ROUTER_OUTPUT in label else "crafted callback"
        return "static/image"

    counts: dict[str, list[int]] = {}
    for method, path, body in cases:
        label = f"{method} {path}" + (f" {json.dumps(body)}" if body else "")
        counts.setdefault(kind(label), [0, 0])[0] += 1
    for label, _, _ in failures:
        counts[kind(label)][1] += 1
    leaks = [f for f in failures if "forbidden" in f[2]]
    canary_opened = str(secret) in opened
    print(
        f"fuzz: {len(cases)} requests in {time.perf_counter() - t0:.1f} s; 5xx by kind: "
        + ", ".join(f"{k} {v[1]}/{v[0]}" for k, v in sorted(counts.items()))
        + f"; canary file opened: {canary_opened}; canary or /etc/passwd in a response: {len(leaks)}"
    )
    for label, status, why in failures[:8]:
        print(f"  {status} {label[:150]} -> {why[:100]!r}")
    return not leaks and not canary_opened


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--swap-seconds", type=float, default=30)
    parser.add_argument("--fuzz", type=int, default=600)
    parser.add_argument("--only", choices=("kills", "swap", "fuzz"), default=None)
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="unitscope-bench-faults-") as tmp:
        work = Path(tmp)
        if args.only in (None, "kills"):
            ok &= bench_kills(work / "kills", args.kills)
        if args.only in (None, "swap"):
            ok &= bench_swap(work, args.swap_seconds)
        if args.only in (None, "fuzz"):
            ok &= bench_fuzz(work, args.fuzz)
        shutil.rmtree(work, ignore_errors=True)
    print("faults:", "all checks held" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
