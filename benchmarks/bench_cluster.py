"""Benchmark of the cluster executor (issue 10): prints figures, is not a test.

    .venv/bin/python benchmarks/bench_cluster.py --source DATA_DIR [--models M ...] [--analyses A ...]
        [--workers 2] [--memory-gb 1.5] [--workdir DIR]

DATA_DIR is a built data folder (e.g. a quick demo: `UNITSCOPE_DATA=DIR python -m precompute demo --quick`);
it is only read. The benchmark copies its database twice (the ONNX files are linked, not copied), adds
the pixels and random controls of the first model when missing, and runs the same batch (every model
matched on the demo dataset, then a few analyses, all with force) once with the local executor and once
on a LocalCluster of --workers single-threaded worker processes. It prints:

  wall time      local vs dask, and the tables' agreement (row counts, max |r| difference)
  per task       compute seconds (on a worker), and the coordinator's own cost per task: preparing the
                 snapshot and ingesting the result (one transaction + publish)
  estimate       the inputs of an estimate for the paper's 14 models x 2 regions (one dataset of 2,560
                 stimuli with both regions: 14 matching runs + their analyses) on a cluster of N GPUs
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_ANALYSES = ("neural_correlation", "layer_scores", "runnerups", "featuremaps", "model_comparison")


def _copy(source: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    shutil.copyfile(source / "unitscope.duckdb", dest / "unitscope.duckdb")
    if (source / "models").is_dir():
        (dest / "models").symlink_to((source / "models").resolve(), target_is_directory=True)
    return dest / "unitscope.duckdb"


def _batch_file(
    path: Path, dataset: str, models: list[str], analyses: list[str], memory_gb: float, controls: list[tuple[str, str]]
) -> None:
    q = lambda names: "[" + ", ".join(f'"{n}"' for n in names) + "]"  # noqa: E731
    text = ""
    for name, control in controls:
        text += f'[[model]]\nname = "{name}"\ncontrol = "{control}"\n'
        text += f'reference = "{name.removeprefix("random-")}"\n\n' if control == "random" else "\n"
    text += (
        f'[[run]]\ndataset = "{dataset}"\nmodels = {q(models)}\nmemory_gb = {memory_gb}\nforce = true\n\n'
        f'[[analyze]]\ndataset = "{dataset}"\nmodels = {q(models)}\nanalyses = {q(analyses)}\nforce = true\n'
    )
    path.write_text(text)


def _tables(db: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {
            t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
            for t in (
                "matches",
                "layer_matches",
                "featuremap_matches",
                "unit_activations",
                "scores",
                "layer_scores",
                "site_scores",
                "runnerups",
                "featuremap_counts",
                "model_comparisons",
            )
        }
        out["_matches"] = con.execute(
            "SELECT dataset, model, site_id, rank, layer_idx, channel, y, x, r FROM matches "
            "ORDER BY dataset, model, site_id, rank"
        ).fetchall()
        return out
    finally:
        con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="a built data folder (read only)")
    parser.add_argument("--dataset", default="synthetic-hvm-quick")
    parser.add_argument("--models", nargs="+", default=["efficientnet-lite0", "pixels", "random-efficientnet-lite0"])
    parser.add_argument("--analyses", nargs="+", default=list(DEFAULT_ANALYSES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-gb", type=float, default=1.5)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    import logging

    import duckdb
    import numpy as np
    from distributed import Client, LocalCluster

    from precompute.core.store import Store
    from precompute.jobs.batch import execute_batch
    from precompute.jobs.batch_file import load_batch

    logging.basicConfig(level=logging.WARNING)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-cluster-"))
    work.mkdir(parents=True, exist_ok=True)
    source = args.source.resolve()
    con = duckdb.connect(str(source / "unitscope.duckdb"), read_only=True)
    have = {m for (m,) in con.execute("SELECT model FROM models").fetchall()}
    n_stim, n_sites = con.execute(
        "SELECT n_stimuli, n_sites FROM datasets WHERE dataset = ?", [args.dataset]
    ).fetchone()
    con.close()
    controls = [
        (m, "pixels" if m.startswith("pixels") else "random")
        for m in args.models
        if m not in have and (m.startswith("pixels") or m.startswith("random-"))
    ]
    batch_path = work / "batch.toml"
    _batch_file(batch_path, args.dataset, args.models, args.analyses, args.memory_gb, controls)
    print(
        f"dataset {args.dataset}: {n_stim} stimuli, {n_sites} sites; models {', '.join(args.models)}; "
        f"analyses {', '.join(args.analyses)}; workdir {work}"
    )

    reports = {}
    for executor in ("local", "dask"):
        store = Store(_copy(source, work / executor))
        quiet: list[str] = []
        client = cluster = None
        if executor == "dask":
            t_start = time.perf_counter()
            cluster = LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
            )
            client = Client(cluster)
            print(f"LocalCluster of {args.workers} worker process(es) started in {time.perf_counter() - t_start:.1f} s")
        t0 = time.perf_counter()
        try:
            report = execute_batch(load_batch(batch_path), store, executor=executor, client=client, report=quiet.append)
        finally:
            if client is not None:
                client.close()
                cluster.close()
        wall = time.perf_counter() - t0
        reports[executor] = (report, wall, _tables(store.served_path))
        print(f"{executor:>5}: {wall:7.1f} s wall for {len(report.outcomes)} tasks ({report.summary()})")

    (lr, lwall, lt), (dr, dwall, dt) = reports["local"], reports["dask"]
    same_counts = all(lt[k] == dt[k] for k in lt if not k.startswith("_"))
    diffs = [abs(a[-1] - b[-1]) for a, b in zip(lt["_matches"], dt["_matches"], strict=False)]
    same_units = [a[:-1] for a in lt["_matches"]] == [b[:-1] for b in dt["_matches"]]
    verdict = lambda ok: "equal" if ok else "DIFFER"  # noqa: E731
    print(
        f"tables: row counts {verdict(same_counts)}; matches units {verdict(same_units)}, "
        f"max |r| difference {max(diffs) if diffs else 0:.2e}"
    )
    print(
        f"speed-up dask/{args.workers} workers vs local: {lwall / dwall:.2f}x (this machine's cores are shared by "
        "the workers and the coordinator)"
    )

    print("\nper task (seconds)             local compute | dask compute  prepare  ingest")
    local_by = {o.task_id: o for o in lr.outcomes}
    for o in dr.outcomes:
        print(
            f"  {o.task_id:<42} {local_by[o.task_id].compute_s:7.1f} | {o.compute_s:7.1f} {o.prepare_s:8.2f} "
            f"{o.ingest_s:7.2f}"
        )
    ran = [o for o in dr.outcomes if o.state == "ran"]
    ingest = np.array([o.ingest_s for o in ran])
    prep = np.array([o.prepare_s for o in ran])
    print(
        f"\ncoordinator overhead per task: ingest {ingest.mean():.2f} s (median {np.median(ingest):.2f}, max "
        f"{ingest.max():.2f}), prepare {prep.mean():.2f} s; total {ingest.sum() + prep.sum():.1f} s of "
        f"{dwall:.1f} s wall"
    )
    match_local = [local_by[o.task_id].compute_s for o in ran if o.task_id.startswith("match:")]
    analyses_local = [local_by[o.task_id].compute_s for o in ran if o.task_id.startswith("analyze:")]
    print(
        f"matching per model (local, {n_stim} stimuli): mean {np.mean(match_local):.1f} s, max "
        f"{np.max(match_local):.1f} s; analyses per task: mean {np.mean(analyses_local):.1f} s"
    )
    print(
        "\nestimate for P pairs on W workers: wall ~ max(sum(task compute) / W, longest chain) + "
        "P x tasks-per-pair x (prepare + ingest) when the coordinator is the bottleneck"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
