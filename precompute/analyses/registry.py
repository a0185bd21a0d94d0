"""The analysis registry: every statistic and analysis, by name, in run order.

An analysis is an `Analysis` registered by name (`register(Analysis(...))`) in one of the modules listed
in `ANALYSIS_MODULES`; `analyses()` imports them all and returns the registry in that order. Running
them (steps, fingerprints, skipping) is precompute/jobs/analyze.py; what they see is `AnalysisContext`
(precompute/analyses/context.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from precompute.core.errors import UserError

if TYPE_CHECKING:
    from precompute.analyses.context import AnalysisContext

#: Modules whose import registers analyses, in run order (an analysis may read what an earlier one wrote).
ANALYSIS_MODULES: tuple[str, ...] = (
    "precompute.statistics.scores",
    "precompute.statistics.ceiling",
    "precompute.statistics.one_to_one",
    "precompute.statistics.depth",
    "precompute.statistics.comparisons",
    # null, pls and crossval share one streaming pass (precompute/statistics/streaming_pass.py): the first
    # of them computes it for all; heldout_split_half (last in crossval) reuses it
    "precompute.statistics.null",
    "precompute.statistics.pls",
    "precompute.statistics.crossval",
    # select on one dataset, evaluate on another (runs only with --select-on)
    "precompute.statistics.cross_dataset",
    # the paper's analyses (issue 7)
    "precompute.analyses.runnerups",
    "precompute.analyses.featuremaps",
    "precompute.analyses.rotations",
    "precompute.analyses.decoding",
    "precompute.analyses.receptive_fields",
)

PROTOCOLS = ("default", "paper")
#: Seed of every resampling unless --seed says otherwise.
DEFAULT_SEED = 0
#: `default_models` values: which demo models an analysis runs on in the default demo.
DEMO_SCOPES = ("all", "primary", "main")
#: Tables an analysis writes through the context, with the columns that identify a (dataset, model).
RESULT_TABLES = ("scores", "layer_scores", "site_scores", "selection_curve")


@dataclass(frozen=True)
class Analysis:
    """A named statistic or analysis.

    run:               computes and writes its rows through the context (inside the step's transaction)
    requires_matching: the model must have match tables on the dataset (`python -m precompute run`)
    default_models:    demo scope: "all" (Lite0/1/2 and the controls), "main" (Lite0 only: the analyses
                       that re-run the model and would not fit the default demo's 30 minutes on a 2-core
                       machine; `demo --full` runs them everywhere) or "primary" (Lite0 and its
                       controls, DESIGN.md's "every analysis on Lite0 and its controls")
    cross_model:       runs once per dataset over every matched model (ctx.model is None, ctx.models set)
    outputs:           (table, metric) pairs it writes; a rerun deletes them for its (dataset, model) first;
                       a metric may name options as `{option}` (formatted with the run's options)
    dataset_options:   options (CLI flags) that name another dataset the analysis reads (e.g. `select_on`
                       for `cross_dataset`): required, so the analysis only runs when they are given (a
                       run of "all analyses" skips it otherwise); the model must be matched on that
                       dataset; its step is `analyze:<name>@<value>:<dataset>:<model>` and is redone when
                       that dataset or its match run changes too
    """

    name: str
    description: str
    run: Callable[[AnalysisContext], None]
    requires_matching: bool = True
    default_models: str = "all"
    cross_model: bool = False
    outputs: tuple[tuple[str, str], ...] = ()
    dataset_options: tuple[str, ...] = ()

    def label(self, options: dict[str, str] | None = None) -> str:
        """The name in step names: `name`, or `name@value` per dataset option (`cross_dataset@hvm-a`)."""
        options = options or {}
        return self.name + "".join(f"@{options[o]}" for o in self.dataset_options if options.get(o))

    def missing_options(self, options: dict[str, str] | None) -> list[str]:
        options = options or {}
        return [o for o in self.dataset_options if not options.get(o)]


_REGISTRY: dict[str, Analysis] = {}


def register(analysis: Analysis) -> Analysis:
    """Add an analysis to the registry (re-registering the same name replaces it, e.g. on reload)."""
    if analysis.default_models not in DEMO_SCOPES:
        raise ValueError(f"{analysis.name}: default_models must be one of {DEMO_SCOPES}")
    for table, _ in analysis.outputs:
        if table not in (*RESULT_TABLES, "model_comparisons"):
            raise ValueError(f"{analysis.name}: unknown output table {table!r}")
    _REGISTRY[analysis.name] = analysis
    return analysis


def analyses() -> dict[str, Analysis]:
    """Every registered analysis by name, in run order (importing ANALYSIS_MODULES first)."""
    for module in ANALYSIS_MODULES:
        importlib.import_module(module)
    order = {m: i for i, m in enumerate(ANALYSIS_MODULES)}
    items = sorted(_REGISTRY.values(), key=lambda a: order.get(a.run.__module__, len(order)))
    return {a.name: a for a in items}


def get_analyses(names: Sequence[str] | None) -> list[Analysis]:
    """The named analyses (all when `names` is empty), or a UserError listing the valid names."""
    known = analyses()
    if not names:
        return list(known.values())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown analysis {', '.join(map(repr, unknown))}; valid names: {', '.join(known)}")
    wanted = set(names)
    return [a for a in known.values() if a.name in wanted]
