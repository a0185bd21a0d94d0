"""The demo's matching steps: one per (demo dataset, model), named `match:<dataset>:<model>`."""

from __future__ import annotations

from precompute.core.store import Store
from precompute.demo import DemoStep, demo_dataset

QUICK_MODELS = ("efficientnet-lite0",)
DEMO_MODELS = (
    "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2",
    "pixels", "random-efficientnet-lite0", "untrained-efficientnet-lite0",
)


def demo_models(variant: str) -> tuple[str, ...]:
    return QUICK_MODELS if variant == "quick" else DEMO_MODELS


def demo_steps(variant: str) -> list[DemoStep]:
    """Matching + gather for every demo model on the variant's dataset."""
    from precompute.match.runner import step_name

    dataset = demo_dataset(variant)
    return [DemoStep(step_name(dataset, model), _runner(dataset, model),
                     f"match {dataset} to {model} (top-100, gather pass)", stale=_stale(dataset, model))
            for model in demo_models(variant)]


def _stale(dataset: str, model: str):
    """A pair matched by an older Unitscope, before the held-out selections were part of matching, is
    matched again when the demo resumes (its analyses follow: their inputs changed)."""
    def stale(served_path) -> bool:
        from precompute.match.runner import served_predates_heldout

        return served_predates_heldout(served_path, dataset, model)

    return stale


def _runner(dataset: str, model: str):
    def run(store: Store) -> None:
        from precompute.match.runner import run_pair

        # A pair whose results are already in the working database (written by `run`) is not redone.
        run_pair(store, dataset, model)

    return run
