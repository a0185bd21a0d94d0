"""`python -m precompute run ...` (matching + gather) and `python -m precompute batch FILE`."""

from __future__ import annotations

import argparse
from pathlib import Path

from precompute.core.errors import UserError
from precompute.core.store import Store
from precompute.jobs.batch import check_batch, run_batch
from precompute.jobs.batch_file import BATCH_HELP, load_batch
from precompute.match.engine import DEFAULT_TOP_K
from precompute.match.runner import run_pair

RUN_HELP = """Match every site of a dataset to the units of each model (exact top-K by Pearson r over the
stimuli, over the whole model, within every layer and within every feature map), then gather the
activations of the top units and of 10 random units per site into unit_activations.

Each (dataset, model) pair is one transaction: a pair already done is skipped unless --force, and an
interrupted run leaves the database as it was (rerun to finish the rest).

Memory: the default budget is half of this machine's RAM; units are split into passes (each re-runs
inference) when the accumulators and staged activations would not fit. Uses every core, and the GPU
for the correlation products when torch sees CUDA.
"""


def register(sub) -> None:
    """Add `run` and `batch` to the `python -m precompute` parser."""
    p = sub.add_parser(
        "run",
        help="match sites to model units (+ gather pass) for dataset x models",
        description=RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="dataset name (see `datasets list`)")
    p.add_argument(
        "--model",
        required=True,
        action="append",
        dest="models",
        metavar="MODEL",
        help="model name (see `models list`); repeat for several models",
    )
    p.add_argument("--top-k", type=int, default=DEFAULT_TOP_K, help="K of matches and layer_matches (default 100)")
    p.add_argument(
        "--memory-gb",
        type=float,
        default=None,
        help="memory budget in GiB for the whole process (default: half of this machine's RAM, or "
        "$UNITSCOPE_MEMORY_GB); 1 GiB of it is reserved for Python, torch and onnxruntime, so the "
        "smallest budget is a little over 1",
    )
    p.add_argument("--force", action="store_true", help="redo pairs that are already matched")
    p.set_defaults(func=cmd_run)

    b = sub.add_parser(
        "batch",
        help="run a TOML file of imports, model additions, runs and analyses (locally or on a Dask cluster)",
        description=BATCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("file", type=Path, help="the TOML batch file")
    b.add_argument(
        "--dry-run",
        action="store_true",
        help="only check the file (options, files, the datasets and models it names: what a real run "
        "checks first) and list what it would do; writes nothing",
    )
    b.add_argument(
        "--executor",
        choices=("local", "dask"),
        default=None,
        help="local: in this process (default); dask: on a Dask cluster (docs/cluster.md)",
    )
    b.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="dask: the scheduler, e.g. tcp://10.0.0.5:8786 (default: $UNITSCOPE_DASK_SCHEDULER, "
        "else a local cluster on this machine)",
    )
    b.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="dask: the results folder shared with the workers (default: $UNITSCOPE_RESULTS_DIR, "
        "else cluster-results/ beside the database)",
    )
    b.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="dask without --scheduler: worker processes of the local cluster (default: cores, max 4)",
    )
    b.set_defaults(func=cmd_batch)


def cmd_run(args: argparse.Namespace, store: Store) -> int:
    for model in dict.fromkeys(args.models):
        outcome = run_pair(store, args.dataset, model, top_k=args.top_k, memory_gb=args.memory_gb, force=args.force)
        if outcome is None:
            print(f"{args.dataset} x {model}: already matched (use --force to redo)")
        else:
            print(
                f"{args.dataset} x {model}: matched in {outcome.match_s:.1f} s ({outcome.n_passes} pass(es), "
                f"inference {outcome.inference_s:.1f} s), gathered {outcome.n_gathered} units in "
                f"{outcome.gather_s:.1f} s"
            )
    return 0


def cmd_batch(args: argparse.Namespace, store: Store) -> int:
    batch = load_batch(args.file)
    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.dry_run:
        tasks = check_batch(batch, store)  # the check a real run makes first; writes nothing
        for line in batch.describe():
            print(line)
        for task in tasks:
            print(f"task   {task.task_id}" + (f" (after {', '.join(task.deps)})" if task.deps else ""))
        return 0
    return run_batch(
        batch,
        store,
        executor=args.executor,
        scheduler=args.scheduler,
        results_dir=args.results_dir,
        workers=args.workers,
    )
