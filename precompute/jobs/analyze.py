"""Running analyses: one step per (analysis, dataset, model), skipped when done on the same inputs.

For each (dataset, model) an analysis runs in its own step `analyze:<name>:<dataset>:<model>` (one
transaction, published when it finishes, skipped when already done on the same inputs unless force); an
analysis over several models (a paired comparison) runs once per dataset as `analyze:<name>:<dataset>`
over every model matched on it, and is redone when that set of models changed. A rerun replaces the
previous rows of that (dataset, model) only.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence

from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import DEFAULT_SEED, PROTOCOLS, Analysis, get_analyses
from precompute.core.catalog import inputs_fingerprint, matched_models, require_dataset, require_model
from precompute.core.errors import UserError
from precompute.core.failpoints import failpoint
from precompute.core.steps import analyze_step
from precompute.core.store import Store, steps_done

log = logging.getLogger(__name__)


def check_inputs(con, dataset: str, models: Sequence[str], need_matching: bool) -> None:
    """UserError when the dataset is unknown or a model has not been matched on it."""
    require_dataset(con, dataset)
    if need_matching:
        done = set(matched_models(con, dataset))
        for model in models:
            if model not in done:
                require_model(con, model)
                raise UserError(
                    f"model {model!r} is not matched on {dataset!r} yet; run "
                    f"`python -m precompute run --dataset {dataset} --model {model}` first"
                )


def run_analysis(
    store: Store,
    analysis: Analysis,
    dataset: str,
    model: str | None = None,
    *,
    protocol: str = "default",
    seed: int = DEFAULT_SEED,
    force: bool = False,
    options: dict[str, str] | None = None,
) -> bool:
    """Run one analysis for one (dataset, model) (or, cross-model, for the dataset) in its own step.

    `options`: values of the analysis's dataset options (e.g. {"select_on": "hvm-a"} for cross_dataset).
    Returns False when skipped: already done on the same inputs (see `inputs_fingerprint`) and not
    `force`."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    options = {k: str(v) for k, v in (options or {}).items() if v}
    missing = analysis.missing_options(options)
    if missing:
        raise UserError(
            f"analysis {analysis.name!r} needs {', '.join('--' + m.replace('_', '-') for m in missing)} "
            "(the dataset to read besides --dataset)"
        )
    target = None if analysis.cross_model else model
    name = analyze_step(analysis.label(options), dataset, target)
    with store.locked():
        with store.connect() as con:
            check_inputs(con, dataset, [] if target is None else [target], analysis.requires_matching)
            other = [options[o] for o in analysis.dataset_options]
            check_other_datasets(con, dataset, other, [] if target is None else [target])
            models = tuple(matched_models(con, dataset)) if analysis.cross_model else ()
            fingerprint = inputs_fingerprint(con, dataset, models if analysis.cross_model else [target])
            for d in other:
                fingerprint += inputs_fingerprint(con, d, [] if target is None else [target])
            unchanged = name in steps_done(con) and _recorded_inputs(con).get(name) == fingerprint
        if unchanged and not force:
            log.info("%s is already done; skipping (use --force to redo it)", name)
            return False
        with store.step(name) as con:
            ctx = AnalysisContext(
                con=con,
                store=store,
                dataset=dataset,
                model=target,
                protocol=protocol,
                seed=seed,
                models=models,
                analysis=analysis.name,
                options=options,
            )
            ctx.clear_outputs(analysis.outputs)
            failpoint("analyze.outputs_cleared")
            analysis.run(ctx)
            store.record(con, "seeds", name, seed)
            store.record(con, ANALYSIS_INPUTS_KEY, name, fingerprint)
    return True


def check_other_datasets(con, dataset: str, others: Sequence[str], models: Sequence[str]) -> None:
    """UserError when a dataset an analysis also reads (a dataset option) is the same dataset, unknown, or
    not matched with the model."""
    for other in others:
        if other == dataset:
            raise UserError(
                f"--select-on names the dataset itself ({dataset!r}); name another dataset that "
                "shares site ids with it (for held-out r within one dataset use heldout_split_half)"
            )
        check_inputs(con, other, models, True)


#: build_info key: JSON object step name -> the inputs fingerprint it ran on
ANALYSIS_INPUTS_KEY = "analysis_inputs"


def _recorded_inputs(con) -> dict:
    row = con.execute("SELECT value FROM build_info WHERE key = ?", [ANALYSIS_INPUTS_KEY]).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


def run_analyses(
    store: Store,
    dataset: str,
    models: Sequence[str],
    names: Sequence[str] | None = None,
    *,
    protocol: str = "default",
    seed: int = DEFAULT_SEED,
    force: bool = False,
    progress: bool = False,
    options: dict[str, str] | None = None,
) -> list[tuple[str, bool]]:
    """Run the named analyses (all by default) for each model, then the cross-model ones once.

    An analysis with dataset options (cross_dataset's `select_on`) runs only when they are given; named
    explicitly without them it is a UserError, in a run of all analyses it is skipped (logged).
    Inputs are checked before anything runs. Returns (step name, ran) per step."""
    options = {k: str(v) for k, v in (options or {}).items() if v}
    chosen = []
    for a in get_analyses(names):
        missing = a.missing_options(options)
        if missing and names:
            raise UserError(
                f"analysis {a.name!r} needs "
                f"{', '.join('--' + m.replace('_', '-') for m in missing)} (the dataset to read besides "
                f"--dataset {dataset})"
            )
        if missing:
            log.info("skipping %s: it needs %s", a.name, ", ".join("--" + m.replace("_", "-") for m in missing))
            continue
        chosen.append(a)
    models = list(dict.fromkeys(models))
    with store.connect() as con:
        check_inputs(con, dataset, models, any(a.requires_matching for a in chosen))
        for a in chosen:
            check_other_datasets(con, dataset, [options[o] for o in a.dataset_options], models)
    plan = [(a, m) for m in models for a in chosen if not a.cross_model]
    plan += [(a, None) for a in chosen if a.cross_model]
    bar = None
    if progress:
        from tqdm import tqdm  # only for the progress bar of an interactive run

        bar = tqdm(total=len(plan), desc="analyze", unit="step", file=sys.stderr)
    out = []
    try:
        for analysis, model in plan:
            name = analyze_step(analysis.label(options), dataset, model)
            if bar is not None:
                bar.set_postfix_str(name, refresh=True)
            used = {o: options[o] for o in analysis.dataset_options}
            out.append(
                (
                    name,
                    run_analysis(
                        store, analysis, dataset, model, protocol=protocol, seed=seed, force=force, options=used
                    ),
                )
            )
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out
