"""The precompute commands the dashboard tells people to run: built here, and only here.

Every empty state, figure and note that names a command gets it from one of these functions, so the
wording of `python -m precompute ...` (its verbs and options, docs/DESIGN.md's CLI) lives in one place.
"""

from __future__ import annotations

#: The model a missing matching step suggests (the demo's main model; backend.catalog prefers it too).
DEFAULT_MODEL = "efficientnet-lite0"


def precompute(*words: object) -> str:
    """`python -m precompute` followed by `words` (a verb and its options), as one line."""
    return " ".join(["python -m precompute", *(str(w) for w in words)])


def _options(dataset: str | None, model: str | None) -> list[str]:
    out = []
    if dataset:
        out += ["--dataset", dataset]
    if model:
        out += ["--model", model]
    return out


def analyze_command(dataset: str | None, model: str | None, analysis: str | None = None) -> str:
    """What computes `analysis` (every analysis when None) for (dataset, model)."""
    return precompute("analyze", *_options(dataset, model), *(["--only", analysis] if analysis else []))


def run_command(dataset: str, model: str = DEFAULT_MODEL) -> str:
    """What matches `model` on `dataset` (matching and the gather pass)."""
    return precompute("run", *_options(dataset, model))


def rf_command(dataset: str, model: str, unit: tuple[int, int, int, int]) -> str:
    """What computes (and gathers) one unit's receptive field; `unit` is (layer_idx, channel, y, x)."""
    return precompute("rf", *_options(dataset, model), "--unit", ",".join(str(int(v)) for v in unit))


def demo_command() -> str:
    """What builds the embedded demo."""
    return precompute("demo")
