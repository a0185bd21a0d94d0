"""Load check: 20 simulated users browse every page with filters for 60 s against gunicorn on loopback.

    .venv/bin/python benchmarks/bench_load.py [--users 20] [--seconds 60] [--workers 2] [--threads 4]
                                              [--db PATH] [--cache filesystem|null] [--auth]

Serves with the app container's entry point (deploy/app.sh -> gunicorn -c deploy/gunicorn_conf.py), on a
copy of the toy-results database the tests use (or `--db`, served in place, read-only), and prints the
request count, errors, p50/p95/p99/max latency overall and per kind of request (target: p95 <= 1 s).
Each user is one keep-alive connection that, without pausing, opens a random page (the page, its layout,
the router callback, every callback the page fires on load, chained callbacks), changes 1-3 filters,
follows the navigation they trigger, and now and then fetches a stimulus image or a CSV/Parquet export.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def toy_database(folder: Path) -> Path:
    """The tests' miniature build: one dataset (9 sites, 24 stimuli), two toy models, scores."""
    from precompute.core.store import Store
    from precompute.datasets.writer import write_dataset
    from tests.support.factories import mini_tables, write_toy_results, write_toy_scores

    store = Store(folder / "unitscope.duckdb")
    write_dataset(store, "mini", mini_tables())
    write_toy_results(store, model="toy")
    write_toy_results(store, model="toy2", seed=1)
    write_toy_scores(store)
    return store.served_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--db", type=Path, default=None, help="serve this database instead of the toy build")
    parser.add_argument("--cache", default="filesystem", choices=("filesystem", "null"))
    parser.add_argument("--auth", action="store_true", help="turn basic auth on (users send credentials)")
    args = parser.parse_args()

    from deploy.loadcheck import HttpTransport, run_load
    from deploy.serving import serve_locally

    with tempfile.TemporaryDirectory(prefix="unitscope-bench-load-") as tmp:
        work = Path(tmp)
        db = args.db.resolve() if args.db else toy_database(work / "data")
        auth = ("bench", "bench-password") if args.auth else None
        env = {
            "UNITSCOPE_DATA": str(db.parent),
            "UNITSCOPE_DB": str(db),
            "UNITSCOPE_CACHE": args.cache,
            "UNITSCOPE_CACHE_DIR": str(work / "cache"),
            "GUNICORN_WORKERS": str(args.workers),
            "GUNICORN_THREADS": str(args.threads),
            "UNITSCOPE_LOG_LEVEL": "WARNING",
            "UNITSCOPE_AUTH_USER": auth[0] if auth else "",
            "UNITSCOPE_AUTH_PASSWORD": auth[1] if auth else "",
            "UNITSCOPE_AUTH_TOKEN": "",
        }
        with serve_locally(env, log_path=work / "gunicorn.log") as url:
            rec = run_load(lambda: HttpTransport(url, auth=auth), users=args.users, seconds=args.seconds)
        summary = rec.summary()
        errors = rec.errors()
        print(
            f"load: {args.users} users x {args.seconds:.0f} s, gunicorn {args.workers} workers x {args.threads} "
            f"threads, cache {args.cache}, auth {'on' if auth else 'off'}, cpus {os.cpu_count()}"
        )
        print(f"  requests {summary['requests']} ({summary['requests'] / args.seconds:.1f}/s), errors {len(errors)}")
        print(
            f"  latency p50 {summary['p50_s']:.3f} s  p95 {summary['p95_s']:.3f} s  p99 {summary['p99_s']:.3f} s  "
            f"max {summary['max_s']:.3f} s  (target p95 <= 1 s: {'met' if summary['p95_s'] <= 1 else 'NOT met'})"
        )
        for kind, row in rec.by_kind().items():
            print(
                f"  {kind:9s} n={row['n']:6d}  p50 {row['p50_s']:.3f} s  p95 {row['p95_s']:.3f} s  "
                f"max {row['max_s']:.3f} s"
            )
        for sample in errors[:10]:
            print(f"  ERROR {sample.kind} {sample.target}: {sample.status} {sample.error[:160]!r}")
        print(json.dumps({"summary": summary, "by_kind": rec.by_kind(), "errors": len(errors)}))
        return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
