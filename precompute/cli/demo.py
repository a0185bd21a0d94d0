"""`python -m precompute demo [--quick | --full] [--status]`: build or resume the embedded default."""

from __future__ import annotations

import argparse

from precompute.core.store import Store
from precompute.jobs import demo
from precompute.jobs.demo import demo_steps, is_complete, missing_steps, run_demo


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="build the embedded default (resumes an interrupted build)",
        description=demo.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="variant",
        help="fewer stimuli and one model (a first look; under 3 minutes)",
    )
    group.add_argument(
        "--full", action="store_const", const="full", dest="variant", help="every analysis on every model"
    )
    p.add_argument("--status", action="store_true", help="only say which steps are done and which are missing")
    p.set_defaults(func=cmd_demo, variant="default")


def cmd_demo(args: argparse.Namespace, store: Store) -> int:
    if args.status:
        missing = {s.name for s in missing_steps(store, args.variant)}
        for step in demo_steps(args.variant):
            print(f"{'missing' if step.name in missing else 'done   '}  {step.name}")
        return 0 if is_complete(store, args.variant) else 1
    run_demo(store, args.variant)
    return 0
