"""`python -m precompute datasets synth | import | list | show | remove`."""

from __future__ import annotations

import argparse
import json

import duckdb

from precompute.core.errors import UserError
from precompute.core.store import Store


def register(sub) -> None:
    p = sub.add_parser("datasets", help="generate, import, list, show or remove datasets")
    dsub = p.add_subparsers(dest="datasets_command", metavar="<action>", required=True)

    s = dsub.add_parser("synth", help="generate the synthetic HvM-like dataset (the embedded default)")
    s.add_argument("--name", default="synthetic-hvm", help="dataset name (default: synthetic-hvm)")
    s.add_argument("--seed", type=int, default=0, help="generator seed; the same seed gives identical tables")
    s.add_argument("--stimuli", type=int, default=None,
                   help="use a category-balanced subset of this many stimuli (default: all 2,560)")
    s.add_argument("--replace", action="store_true", help="overwrite a dataset of the same name")
    s.set_defaults(func=_cmd_synth)

    try:
        from precompute.datasets.importers.cli import add_import_parser
    except ImportError:  # the importers are an optional part of a partial checkout
        pass
    else:
        add_import_parser(dsub)

    ls = dsub.add_parser("list", help="list datasets")
    ls.set_defaults(func=_cmd_list)
    sh = dsub.add_parser("show", help="show one dataset: its description, regions and reliability")
    sh.add_argument("name")
    sh.set_defaults(func=_cmd_show)
    rm = dsub.add_parser("remove", help="remove a dataset and every result derived from it")
    rm.add_argument("name")
    rm.set_defaults(func=_cmd_remove)


def _cmd_synth(args: argparse.Namespace, store: Store) -> int:
    from precompute.datasets import synth
    from precompute.datasets.writer import write_dataset

    # The demo's own datasets: `demo` takes a dataset of that name as its step done, so only its settings fit.
    demo = {"synthetic-hvm": None, "synthetic-hvm-quick": synth.QUICK_STIMULI}
    n_stimuli = demo.get(args.name, args.stimuli) if args.stimuli is None else args.stimuli
    if args.name in demo:
        n_stimuli = n_stimuli if n_stimuli != synth.N_HVM_STIMULI else None
        if args.seed != 0 or n_stimuli != demo[args.name]:
            raise UserError(f"{args.name} is the demo's dataset (seed 0, {demo[args.name] or 'all'} stimuli), and "
                            "`demo` would take this one for it; give a dataset with other settings another --name")
    tables = synth.generate(seed=args.seed, n_stimuli=n_stimuli)
    write_dataset(store, args.name, tables, replace=args.replace)
    print(f"dataset {args.name}: {len(tables.stimuli)} stimuli, {len(tables.sites)} sites "
          f"(synthetic, seed {args.seed})")
    return 0


def _read_only(store: Store) -> duckdb.DuckDBPyConnection:
    if not store.served_path.exists():
        raise UserError(f"no database at {store.served_path}; build one with `python -m precompute demo` "
                        "or add a dataset with `python -m precompute datasets synth`")
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
        known = [r[0] for r in con.execute("SELECT dataset FROM datasets ORDER BY 1").fetchall()]
        raise UserError(f"no dataset named {args.name!r}; known datasets: {', '.join(known) or 'none'}")
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
        "GROUP BY region ORDER BY region DESC", [args.name]
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
    from precompute.datasets.writer import remove_dataset

    remove_dataset(store, args.name)
    print(f"removed dataset {args.name} and every result derived from it")
    return 0
