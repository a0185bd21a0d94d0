"""`python -m precompute [--db PATH] <command> ...`: the command-line entry point.

Each command group registers its own subcommands (`register(subparsers)` in its module of this
package) and each subcommand's handler is `func(args, store) -> exit code`. Errors the user can fix are raised as
`UserError` and printed as one clear message, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from backend.config import get_settings
from precompute.cli import analyze, datasets, demo, match, models, rf
from precompute.core.errors import UserError
from precompute.core.failpoints import FailpointError, check_environment
from precompute.core.store import Store, StoreBusyError

log = logging.getLogger("precompute")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m precompute",
        description="Unitscope's offline job: import data, add models, match sites to units, analyse.",
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="served DuckDB file (default: $UNITSCOPE_DB or <data folder>/unitscope.duckdb)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for group in (datasets, models, match, analyze, rf, demo):
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else getattr(logging, settings.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx", "h5py", "matplotlib"):  # third-party INFO chatter
        logging.getLogger(noisy).setLevel(logging.WARNING)
    store = Store(args.db or settings.db_path)
    try:
        check_environment()  # a misspelt UNITSCOPE_FAILPOINT must not let a fault test pass unkilled
        return int(args.func(args, store) or 0)
    except (UserError, StoreBusyError, FailpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the served database is unchanged; rerun to resume", file=sys.stderr)
        return 130
