"""`python -m precompute demo [--quick | --full]`: the embedded default, as a list of steps.

Each area contributes its steps through a `demo_steps(variant)` function in the modules listed in
`STEP_PROVIDERS`, in order (dataset first, then models, matching, statistics, analyses). A step is
skipped when the database already records it as done, so an interrupted build resumes where it
stopped; each step publishes when it finishes, so the dashboard fills in while the build runs.

Variants:
  default  the demo DESIGN.md describes (synthetic-hvm, Lite0/1/2 and the controls)
  quick    fewer stimuli and one model, for a first look and for tests (dataset synthetic-hvm-quick)
  full     every analysis on every model
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from precompute.core.store import Store, read_steps_done

log = logging.getLogger(__name__)

VARIANTS = ("quick", "default", "full")

#: Analyses run after every model's fast steps (besides those scoped to the main model only): minutes each.
SLOW_ANALYSES = frozenset({"decoding"})
#: Modules that define `demo_steps(variant: str) -> list[DemoStep]`, in build order.
STEP_PROVIDERS = (
    "precompute.datasets.synth",
    "precompute.models.demo",
    "precompute.match.demo",
    "precompute.analyze",
)


@dataclass(frozen=True)
class DemoStep:
    """One unit of the demo build. `run(store)` must do its writing inside `store.step(name)`.

    `stale(served_path)`: True when a step recorded as done must be run again (its results were made by an
    older Unitscope in a form the later steps can no longer use)."""

    name: str
    run: Callable[[Store], None]
    description: str = ""
    stale: Callable[[Path], bool] | None = None


def demo_dataset(variant: str) -> str:
    return "synthetic-hvm-quick" if variant == "quick" else "synthetic-hvm"


def demo_steps(variant: str = "default") -> list[DemoStep]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown demo variant {variant!r}; use one of {VARIANTS}")
    steps: list[DemoStep] = []
    for module_name in STEP_PROVIDERS:
        if importlib.util.find_spec(module_name) is None:  # an area not built in this checkout
            log.debug("no demo steps from %s (module missing)", module_name)
            continue
        module = importlib.import_module(module_name)
        provider = getattr(module, "demo_steps", None)
        if provider is not None:
            steps.extend(provider(variant))
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise RuntimeError(f"duplicate demo step names: {names}")
    return build_order(steps)


def build_order(steps: list[DemoStep]) -> list[DemoStep]:
    """The order the build runs in, so the dashboard is useful early and fills in by value per minute:
    the dataset; then model by model (Lite0 first, then its controls, then Lite1/Lite2) the export, the
    matching and the analyses that take seconds; then the analyses that take minutes (statistics pass,
    rotations, decoding, receptive fields) model by model; last the comparisons across models, which need
    every model matched. Steps keep their providers' order within each of these groups."""
    from precompute.analyze import OTHER_DEMO_MODELS, PRIMARY_DEMO_MODELS, analyses

    ranked = [*PRIMARY_DEMO_MODELS, *OTHER_DEMO_MODELS]
    slow = {a.name for a in analyses().values() if a.default_models == "main"} | SLOW_ANALYSES

    def rank(model: str) -> int:
        return ranked.index(model) if model in ranked else len(ranked)

    def key(step: DemoStep) -> tuple[int, int, int]:
        kind, *rest = step.name.split(":")
        if kind == "dataset":
            return (0, 0, 0)
        if kind == "model":
            return (1, rank(rest[0]), 0)
        if kind == "match" and len(rest) == 2:
            return (1, rank(rest[1]), 1)
        if kind == "analyze" and len(rest) == 3:
            return (2, rank(rest[2]), 0) if rest[0] in slow else (1, rank(rest[2]), 2)
        return (3, 0, 0)

    return sorted(steps, key=key)


def missing_steps(store: Store, variant: str = "default") -> list[DemoStep]:
    done = set(read_steps_done(store.served_path))
    return [s for s in demo_steps(variant)
            if s.name not in done or (s.stale is not None and s.stale(store.served_path))]


def is_complete(store: Store, variant: str = "default") -> bool:
    return not missing_steps(store, variant)


def run_demo(store: Store, variant: str = "default") -> int:
    """Run every step not yet recorded as done; return the number of steps run."""
    with store.locked():
        todo = missing_steps(store, variant)
        total = len(demo_steps(variant))
        if not todo:
            log.info("demo build (%s) is complete: nothing to do", variant)
            return 0
        log.info("demo build (%s): %d of %d steps to run", variant, len(todo), total)
        t0 = time.perf_counter()
        for i, step in enumerate(todo, 1):
            log.info("[%d/%d] %s%s", i, len(todo), step.name, f": {step.description}" if step.description else "")
            step.run(store)
        log.info("demo build (%s) finished in %.0f s", variant, time.perf_counter() - t0)
        return len(todo)


def register(sub) -> None:
    p = sub.add_parser("demo", help="build the embedded default (resumes an interrupted build)",
                       description=__doc__, formatter_class=_raw())
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_const", const="quick", dest="variant",
                       help="fewer stimuli and one model (a first look; under 3 minutes)")
    group.add_argument("--full", action="store_const", const="full", dest="variant",
                       help="every analysis on every model")
    p.add_argument("--status", action="store_true", help="only say which steps are done and which are missing")
    p.set_defaults(func=_cmd_demo, variant="default")


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def _cmd_demo(args, store: Store) -> int:
    if args.status:
        missing = {s.name for s in missing_steps(store, args.variant)}
        for step in demo_steps(args.variant):
            print(f"{'missing' if step.name in missing else 'done   '}  {step.name}")
        return 0 if is_complete(store, args.variant) else 1
    run_demo(store, args.variant)
    return 0
