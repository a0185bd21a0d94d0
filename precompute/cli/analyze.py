"""`python -m precompute analyze`: the command line of precompute/jobs/analyze.py."""

from __future__ import annotations

import argparse

from precompute.analyses.registry import DEFAULT_SEED, PROTOCOLS, analyses
from precompute.core.store import Store
from precompute.jobs.analyze import run_analyses

ANALYZE_HELP = """Compute statistics and analyses for a dataset and one or more matched models, into the
scores, layer_scores, site_scores, selection_curve and model_comparisons tables (docs/metrics.md).
`--select-on A` adds cross_dataset (each site's best unit on dataset A, scored on --dataset); without it
cross_dataset is skipped.

Each analysis runs for each model in its own step (one transaction, published when done); a step
already done on the same inputs is skipped unless --force (use it to recompute with another --seed or
--protocol); a step is redone by itself when its dataset was re-imported or its model re-matched. A
rerun replaces only that (dataset, model)'s rows. Cross-model comparisons run once per dataset over
every model matched on it (and again when that set changes).

Analyses:
"""


def register(sub) -> None:
    """Add `analyze` to the `python -m precompute` parser."""
    listing = "\n".join(f"  {a.name:<20} {a.description}" for a in analyses().values())
    p = sub.add_parser(
        "analyze",
        help="statistics and analyses over matched models (scores, intervals, ...)",
        description=ANALYZE_HELP + listing,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help="dataset name (see `datasets list`)")
    p.add_argument(
        "--model",
        required=True,
        action="append",
        dest="models",
        metavar="MODEL",
        help="a model matched on the dataset; repeat for several",
    )
    p.add_argument(
        "--only",
        action="append",
        dest="only",
        metavar="NAME",
        default=None,
        help="run only this analysis (repeatable; default: all)",
    )
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="default",
        help="default, or paper (full protocols: more resamples, every layer)",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of every resampling (default 0)")
    p.add_argument("--force", action="store_true", help="redo analyses that are already done")
    p.add_argument(
        "--select-on",
        dest="select_on",
        metavar="DATASET",
        default=None,
        help="cross_dataset: the dataset whose best units are evaluated on --dataset (the two must "
        "share site ids; the model must be matched on it)",
    )
    p.set_defaults(func=cmd_analyze)


def cmd_analyze(args: argparse.Namespace, store: Store) -> int:
    results = run_analyses(
        store,
        args.dataset,
        args.models,
        args.only,
        protocol=args.protocol,
        seed=args.seed,
        force=args.force,
        progress=True,
        options={"select_on": getattr(args, "select_on", None)},
    )
    for name, ran in results:
        print(f"{name}: {'done' if ran else 'already done (use --force to redo)'}")
    return 0
