"""`python -m precompute datasets import`: read real recordings, validate them, write them in one step.

    datasets import --name NAME --format brainio --assembly FILE.nc --stimuli FILE.csv --images FILE.zip
    datasets import --name NAME --format hvm-hdf5 --path ventral_neural_data.hdf5
    datasets import --name NAME --format folder --path DIR

Selection (every format): --variation 6 | 0,3, --time-bin 70-170, --exclude-sites PATTERN|FILE ...,
--region V4,IT, --preset majajhong2015 (variation 6, 70-170 ms, without Tito_L_P_*: 2,560 stimuli,
88 V4 + 168 IT). Problems in the input are all reported together and nothing is written; importing
under an existing name needs --replace. See docs/import-your-data.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from precompute.core.errors import UserError
from precompute.core.store import Store

log = logging.getLogger(__name__)


def add_import_parser(sub) -> argparse.ArgumentParser:
    """Add the `import` subcommand to the `datasets` command group's subparsers."""
    p = sub.add_parser("import", help="import real recordings (BrainIO, the HvM HDF5 release, a folder)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="dataset name to store it under")
    p.add_argument("--format", required=True, choices=("brainio", "hvm-hdf5", "folder"), help="input format")
    p.add_argument("--assembly", type=Path, help="brainio: the assembly .nc file")
    p.add_argument("--stimuli", type=Path, help="brainio: the stimulus set CSV")
    p.add_argument("--images", type=Path, help="brainio: the stimulus set ZIP of images")
    p.add_argument("--path", type=Path, help="hvm-hdf5: the .hdf5 file; folder: the folder")
    sel = p.add_argument_group("selection (all formats)")
    sel.add_argument("--variation", help="keep these variation levels, e.g. 6 or 0,3")
    sel.add_argument("--time-bin", help="average the time bins inside START-END ms, e.g. 70-170")
    sel.add_argument("--exclude-sites", nargs="+", metavar="PATTERN",
                     help="site ids or globs to leave out (e.g. 'Tito_L_P_*'), or files listing ids one per line")
    sel.add_argument("--region", help="keep only these regions, e.g. V4,IT")
    sel.add_argument("--preset", choices=("majajhong2015",),
                     help="Brain-Score's selection for the seed paper: variation 6, 70-170 ms, without Tito_L_P_*")
    p.add_argument("--drop-bad-sites", action="store_true",
                   help="drop (and list) sites with NaN/infinite or constant responses instead of refusing")
    p.add_argument("--replace", action="store_true", help="overwrite a dataset of the same name and its results")
    p.add_argument("--title", help="dataset title (default: from the input)")
    p.add_argument("--visual-degrees", type=float, help="stimulus width in degrees of visual angle (default 8)")
    p.set_defaults(func=cmd_import)
    return p


#: the input options each format needs
NEEDS = {"brainio": ("assembly", "stimuli", "images"), "hvm-hdf5": ("path",), "folder": ("path",)}


def check_import_args(args: argparse.Namespace):
    """UserError (naming every problem) when the options cannot work: a selection that does not parse,
    missing input options; checked without reading the recordings. Returns the Selection. A batch
    file's check uses it too."""
    from precompute.datasets.importers.selection import build_selection

    problems, selection = [], None
    try:
        selection = build_selection(preset=args.preset, variation=args.variation, time_bin=args.time_bin,
                                    exclude_sites=args.exclude_sites, region=args.region)
    except UserError as exc:
        problems.append(str(exc))
    try:
        _need(args, *NEEDS[args.format])
    except UserError as exc:
        problems.append(str(exc))
    if problems:
        raise UserError("; ".join(problems))
    return selection


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise UserError(f"--format {args.format} needs {' and '.join(missing)}; see "
                        "`python -m precompute datasets import --help`")


def _existing(store: Store, name: str) -> bool:
    """Whether a dataset of that name exists (checked before a long import; the writer checks again)."""
    import duckdb

    path = store.working_path if store.working_path.exists() else store.served_path
    if not path.exists():
        return False
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return False
    try:
        return con.execute("SELECT count(*) FROM datasets WHERE dataset = ?", [name]).fetchone()[0] > 0
    except duckdb.Error:
        return False
    finally:
        con.close()


def run_import(args: argparse.Namespace):
    """Parse the selection and run the format's importer; returns DatasetTables or raises UserError."""
    selection = check_import_args(args)
    if args.format == "brainio":
        from precompute.datasets.importers.brainio import import_brainio

        tables = import_brainio(args.assembly, args.stimuli, args.images, selection,
                                drop_bad_sites=args.drop_bad_sites)
    elif args.format == "hvm-hdf5":
        from precompute.datasets.importers.hvm_hdf5 import import_hvm_hdf5

        tables = import_hvm_hdf5(args.path, selection, drop_bad_sites=args.drop_bad_sites)
    else:
        from precompute.datasets.importers.folder import import_folder

        tables = import_folder(args.path, selection, drop_bad_sites=args.drop_bad_sites)
    if args.title:
        tables.info["title"] = args.title
    if args.visual_degrees is not None:
        tables.info["visual_degrees"] = args.visual_degrees
    return tables


def cmd_import(args: argparse.Namespace, store: Store) -> int:
    """Import, validate (refusing with every problem), then write in one transaction and publish."""
    from precompute.datasets.writer import write_dataset

    if not args.replace and _existing(store, args.name):
        raise UserError(f"a dataset named {args.name!r} already exists; pass --replace to overwrite it (this "
                        "removes every result derived from it) or choose another --name")
    tables = run_import(args)
    write_dataset(store, args.name, tables, replace=args.replace)
    regions = tables.sites["region"].value_counts().to_dict()
    print(f"dataset {args.name}: {len(tables.stimuli)} stimuli, {len(tables.sites)} sites "
          f"({', '.join(f'{n} {r}' for r, n in regions.items())}), "
          f"{'with' if tables.trials is not None else 'without'} trials ({tables.info.get('source')})")
    dropped = tables.extra.get("dropped_sites") or {}
    if dropped:
        print(f"dropped {len(dropped)} site(s) (--drop-bad-sites):")
        for sid, why in dropped.items():
            print(f"  {sid}: {why}")
    return 0
