"""`python -m precompute datasets synth | import | list | show | remove`."""

from __future__ import annotations

import argparse
import json

import duckdb

from precompute.core.catalog import dataset_names
from precompute.core.errors import UserError
from precompute.core.options import add_arguments, from_namespace
from precompute.core.store import Store
from precompute.datasets import synth
from precompute.datasets.importers import request as import_request
from precompute.datasets.importers.request import ImportRequest, import_dataset
from precompute.datasets.writer import remove_dataset, write_dataset
from precompute.jobs.demo import DEMO_DATASETS


def register(sub) -> None:
    p = sub.add_parser("datasets", help="generate, import, list, show or remove datasets")
    dsub = p.add_subparsers(dest="datasets_command", metavar="<action>", required=True)

    s = dsub.add_parser("synth", help="generate the synthetic HvM-like dataset (the embedded default)")
    s.add_argument("--name", default="synthetic-hvm", help="dataset name (default: synthetic-hvm)")
    s.add_argument("--seed", type=int, default=0, help="generator seed; the same seed gives identical tables")
    s.add_argument(
        "--stimuli",
        type=int,
        default=None,
        help="use a category-balanced subset of this many stimuli (default: all 2,560)",
    )
    s.add_argument("--replace", action="store_true", help="overwrite a dataset of the same name")
    s.set_defaults(func=_cmd_synth)

    i = dsub.add_parser(
        "import",
        help="import real recordings (BrainIO, the HvM HDF5 release, a folder)",
        description=import_request.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(i, ImportRequest, metavars={"exclude_sites": "PATTERN"})
    i.set_defaults(func=_cmd_import)

    ls = dsub.add_parser("list", help="list datasets")
    ls.set_defaults(func=_cmd_list)
    sh = dsub.add_parser("show", help="show one dataset: its description, regions and reliability")
    sh.add_argument("name")
    sh.set_defaults(func=_cmd_show)
    rm = dsub.add_parser("remove", help="remove a dataset and every result derived from it")
    rm.add_argument("name")
    rm.set_defaults(func=_cmd_remove)


def _cmd_synth(args: argparse.Namespace, store: Store) -> int:
    # The demo's own datasets: `demo` takes a dataset of that name as its step done, so only its settings fit.
    n_stimuli = DEMO_DATASETS.get(args.name, args.stimuli) if args.stimuli is None else args.stimuli
    if args.name in DEMO_DATASETS:
        n_stimuli = n_stimuli if n_stimuli != synth.N_HVM_STIMULI else None
        if args.seed != 0 or n_stimuli != DEMO_DATASETS[args.name]:
            raise UserError(
                f"{args.name} is the demo's dataset (seed 0, {DEMO_DATASETS[args.name] or 'all'} "
                "stimuli), and `demo` would take this one for it; give a dataset with other settings "
                "another --name"
            )
    tables = synth.generate(seed=args.seed, n_stimuli=n_stimuli)
    write_dataset(store, args.name, tables, replace=args.replace)
    print(
        f"dataset {args.name}: {len(tables.stimuli)} stimuli, {len(tables.sites)} sites (synthetic, seed {args.seed})"
    )
    return 0


def _cmd_import(args: argparse.Namespace, store: Store) -> int:
    """Import, validate (refusing with every problem), then write in one transaction and publish."""
    tables = import_dataset(store, from_namespace(ImportRequest, args))
    regions = tables.sites["region"].value_counts().to_dict()
    print(
        f"dataset {args.name}: {len(tables.stimuli)} stimuli, {len(tables.sites)} sites "
        f"({', '.join(f'{n} {r}' for r, n in regions.items())}), "
        f"{'with' if tables.trials is not None else 'without'} trials ({tables.info.get('source')})"
    )
    dropped = tables.extra.get("dropped_sites") or {}
    if dropped:
        print(f"dropped {len(dropped)} site(s) (--drop-bad-sites):")
        for sid, why in dropped.items():
            print(f"  {sid}: {why}")
    return 0


def _read_only(store: Store) -> duckdb.DuckDBPyConnection:
    if not store.served_path.exists():
        raise UserError(
            f"no database at {store.served_path}; build one with `python -m precompute demo` "
            "or add a dataset with `python -m precompute datasets synth`"
        )
    return duckdb.connect(str(store.served_path), read_only=True)


def _cmd_list(args: argparse.Namespace, store: Store) -> int:
    con = _read_only(store)
    rows = con.execute(
        "SELECT dataset, source, synthetic, n_stimuli, n_sites, n_repetitions, title FROM datasets ORDER BY dataset"
    ).fetchall()
    if not rows:
        print("no datasets yet: `python -m precompute datasets synth` makes the default one")
        return 0
    print(f"{'dataset':<24} {'source':<9} {'stimuli':>7} {'sites':>6} {'reps':>5}  title")
    for name, source, synthetic, n_stim, n_sites, n_reps, title in rows:
        label = f"{title}{' (synthetic)' if synthetic else ''}"
        reps = n_reps if n_reps is not None else "-"
        print(f"{name:<24} {source or '':<9} {n_stim:>7} {n_sites:>6} {reps:>5}  {label}")
    return 0


def _cmd_show(args: argparse.Namespace, store: Store) -> int:
    con = _read_only(store)
    rows = con.execute("SELECT * FROM datasets WHERE dataset = ?", [args.name]).fetchall()
    row = rows[0] if rows else None
    if row is None:
        raise UserError(f"no dataset named {args.name!r}; known datasets: {', '.join(dataset_names(con)) or 'none'}")
    cols = [d[0] for d in con.description]
    info = dict(zip(cols, row, strict=True))
    for key in cols:
        if key != "description":
            print(f"{key:>15}: {info[key]}")
    print(f"{'description':>15}: {info['description']}")
    print()
    print(f"{'region':<8} {'sites':>6} {'median reliability':>19} {'median RF size (deg)':>21}")
    for region, n, rel, rf in con.execute(
        "SELECT region, count(*), median(reliability), median(rf_size_deg) FROM sites WHERE dataset = ? "
        "GROUP BY region ORDER BY region DESC",
        [args.name],
    ).fetchall():
        rel_s = f"{rel:.3f}" if rel is not None else "-"
        rf_s = f"{rf:.2f}" if rf is not None else "-"
        print(f"{region:<8} {n:>6} {rel_s:>19} {rf_s:>21}")
    cats = con.execute(
        "SELECT category, count(*) FROM stimuli WHERE dataset = ? GROUP BY 1 ORDER BY 1", [args.name]
    ).fetchall()
    if cats and cats[0][0] is not None:
        print()
        print("categories: " + json.dumps(dict(cats)))
    return 0


def _cmd_remove(args: argparse.Namespace, store: Store) -> int:
    remove_dataset(store, args.name)
    print(f"removed dataset {args.name} and every result derived from it")
    return 0
