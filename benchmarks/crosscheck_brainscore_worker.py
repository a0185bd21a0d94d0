"""Brain-Score side of the cross-check of Unitscope's held-out statistics: runs Brain-Score's OWN code
(brainscore_vision 2.4.x) on in-memory arrays and writes what it computes to a JSON file.

This script is NOT part of Unitscope's environment. It runs inside a scratch virtual environment that has
`brainscore-vision` installed (it needs xarray 2022.3, torch, ... which Unitscope does not):

    python3.11 -m venv ~/.cache/unitscope/brainscore-venv
    ~/.cache/unitscope/brainscore-venv/bin/pip install "brainscore-vision==2.4.*"
    ~/.cache/unitscope/brainscore-venv/bin/python benchmarks/crosscheck_brainscore_worker.py IN.npz OUT.json \
        [--source-dtype float64|float32] [--quiet]

Nothing is downloaded: no Brain-Score dataset, model or weight is loaded; only its metric classes run.

Input (IN.npz, loaded with allow_pickle=False; float64 unless stated)
---------------------------------------------------------------------
responses      (sites, stimuli)          trial-averaged responses (the target assembly)
trials         (sites, stimuli, reps)    single trials, NaN where missing                       [optional]
site_ids       (sites,) str              unique
regions        (sites,) str
stimulus_ids   (stimuli,) str            unique
objects        (stimuli,) str            object label of each stimulus (Brain-Score's `object_name`)
candidates     (units, stimuli) float32  activations of the candidate model units (the source assembly)
candidate_keys (units,) str              a name per candidate (returned for the selected units)
train_masks    (splits, stimuli) bool    explicit training sets, test = complement            [optional]

What it computes, and where in brainscore_vision it comes from
--------------------------------------------------------------
All scores are computed per region, as Brain-Score's neural benchmarks are (one benchmark per region,
`NeuralBenchmark.__call__` in brainscore_vision/benchmark_helpers/neural_common.py calls
`similarity_metric(model_assembly, region_assembly)`; source = model units, target = sites).

(i)  "explicit": `load_metric('neuron_to_neuron')` (a `CrossRegressedCorrelation` with
     `single_regression()` and `pearsonr_correlation()`, metrics/regression_correlation/__init__.py + metric.py)
     with its sklearn splitter (`metric.cross_validation._split._split`, a StratifiedShuffleSplit) replaced
     by a fixed splitter that yields the given train_masks. Everything else is Brain-Score's own pipeline:
     `CrossValidation.pipe` subsets the assemblies (metric_helpers/transformations.py),
     `XarrayRegression(SingleRegression)` selects, for each site, the candidate with the highest SIGNED
     Pearson r on the training stimuli (np.nanargmax: the first candidate wins ties, constant candidates
     (NaN r) are skipped) and predicts the test stimuli with that candidate's raw activation (no fit, no
     scaling), `XarrayCorrelation(scipy.stats.pearsonr)` scores it per site on the test stimuli, and the
     aggregation is Brain-Score's: per split the median over sites, then the mean over splits (the
     `error` is the std over splits of those medians / sqrt(splits)).
(ii) "standard": the same metric exactly as `load_metric('neuron_to_neuron')` builds it: 10 splits,
     StratifiedShuffleSplit(n_splits=10, train_size=0.9, random_state=1) stratified on `object_name`, over
     the target assembly's stimulus order (= the input order here). The splitter is wrapped (not replaced)
     to record the splits it produced; they are returned as training masks over the input stimulus order.
     When trials are given, the ceiled score is also reported as Brain-Score's benchmarks do it:
     `explained_variance(score, ceiling)` = r**2 / ceiling (neural_common.py).
(iii) "internal_consistency": `load_ceiling('internal_consistency')` (metrics/internal_consistency/ceiling.py)
     on the region's trial assembly (presentation = stimulus x repetition): 10 ShuffleSplits of the unique
     repetition values into halves (train_size=0.5, random_state=1), each half averaged over its
     repetitions (NaN skipped), Pearson r per site between the halves, Spearman-Brown corrected
     (2r / (1 + r)), then per split the median over sites and the mean over splits. Per-site values (the
     raw split x site array) are returned too, with their mean and median over splits.
(iv) versions and notes on these conventions.

Output (OUT.json; NaN is written as null; all per-site arrays follow the input site order)
------------------------------------------------------------------------------------------
{
  "format": "unitscope-brainscore-crosscheck/1",
  "inputs": {"sites", "stimuli", "candidates", "explicit_splits", "trials": bool, "reps", "source_dtype"},
  "site_ids": [...], "regions": [...], "region_order": [...],
  "excluded_sites": [{"site_id", "reason"}],             # never passed to Brain-Score (it would raise)
  "explicit": {                                           # absent without train_masks
      "r": [[r per split] per site],                      # held-out Pearson r, sites x splits
      "selected": [[candidate_key per split] per site],   # the unit SingleRegression chose
      "selected_index": [[index into candidates] ...],
      "per_region": {region: {"score", "error", "per_split_median": [...], "sites",
                              with trials also "ceiling", "ceiled" (= score**2 / ceiling), "ceiled_convention"}}},
  "standard": {
      "splits": {"class", "n_splits", "train_size", "test_size", "random_state", "stratification_coord",
                 "train_masks": [[bool per stimulus] per split]},
      "r": ..., "selected": ..., "selected_index": ..., "per_region": {...}},
  "internal_consistency": {                               # absent without trials
      "per_region": {region: {"ceiling", "error", "per_split_median": [...], "sites"}},
      "per_site": {"per_split": [[...] per site], "mean_over_splits": [...], "median_over_splits": [...]},
      "repetition_splits": [{"half1": [...], "half2": [...]} per split]},
  "versions": {...}, "notes": [...], "seconds": float
}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings

# Brain-Score's plugin loader (brainscore_core.plugin_management.import_plugin) runs `pip install -r
# <plugin>/requirements.txt` through the shell for every load_metric unless BS_INSTALL_DEPENDENCIES=no;
# that `pip` is whichever is first on PATH, not necessarily this venv's. Never let it install anything.
os.environ["BS_INSTALL_DEPENDENCIES"] = "no"
os.environ.setdefault("TQDM_DISABLE", "1")  # Brain-Score's cross-validation loops print tqdm bars

import numpy as np

FORMAT = "unitscope-brainscore-crosscheck/1"


def _import_brainscore():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "xarray subclass Score should explicitly define __slots__"
        from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
        from brainscore_vision import load_ceiling, load_metric
    try:
        from brainscore_vision.benchmark_helpers.neural_common import explained_variance
    except Exception:  # pragma: no cover - only if that module's imports break in another version
        explained_variance = None
    return NeuroidAssembly, load_metric, load_ceiling, explained_variance


# ----------------------------------------------------------------------------------------------- input


def load_input(path: str) -> dict:
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    for key in ("responses", "site_ids", "regions", "stimulus_ids", "objects", "candidates", "candidate_keys"):
        if key not in d:
            raise SystemExit(f"{path}: missing array {key!r}")
    d["responses"] = np.asarray(d["responses"], dtype=np.float64)
    n_sites, n_stim = d["responses"].shape
    for key in ("site_ids", "regions", "stimulus_ids", "objects", "candidate_keys"):
        d[key] = np.asarray(d[key]).astype(str)
    d["candidates"] = np.asarray(d["candidates"])
    checks = [
        ("site_ids", d["site_ids"].shape == (n_sites,)),
        ("regions", d["regions"].shape == (n_sites,)),
        ("stimulus_ids", d["stimulus_ids"].shape == (n_stim,)),
        ("objects", d["objects"].shape == (n_stim,)),
        ("candidates", d["candidates"].ndim == 2 and d["candidates"].shape[1] == n_stim),
        ("candidate_keys", d["candidate_keys"].shape == (d["candidates"].shape[0],)),
    ]
    if "trials" in d:
        d["trials"] = np.asarray(d["trials"], dtype=np.float64)
        checks.append(("trials", d["trials"].ndim == 3 and d["trials"].shape[:2] == (n_sites, n_stim)))
    if "train_masks" in d:
        d["train_masks"] = np.asarray(d["train_masks"]).astype(bool)
        if d["train_masks"].ndim == 1:
            d["train_masks"] = d["train_masks"][None, :]
        checks.append(("train_masks", d["train_masks"].ndim == 2 and d["train_masks"].shape[1] == n_stim))
    bad = [k for k, ok in checks if not ok]
    if bad:
        raise SystemExit(f"{path}: wrong shape for {', '.join(bad)} (responses is {d['responses'].shape})")
    for key in ("site_ids", "stimulus_ids"):
        if len(np.unique(d[key])) != len(d[key]):
            raise SystemExit(f"{path}: {key} must be unique")
    if "train_masks" in d:
        sizes = d["train_masks"].sum(axis=1)
        if (sizes < 3).any() or (sizes > n_stim - 3).any():
            raise SystemExit(f"{path}: every train mask needs >= 3 training and >= 3 test stimuli")
    return d


# ------------------------------------------------------------------------------------------ assemblies


def target_assembly(assembly_cls, values, site_ids, regions, stimulus_ids, objects):
    """(stimuli, sites) as Brain-Score's averaged neural assemblies: dims (presentation, neuroid),
    presentation coords stimulus_id + object_name, neuroid coords neuroid_id + region."""
    return assembly_cls(
        np.asarray(values, dtype=np.float64).T,
        coords={
            "stimulus_id": ("presentation", stimulus_ids),
            "object_name": ("presentation", objects),
            "neuroid_id": ("neuroid", site_ids),
            "region": ("neuroid", regions),
        },
        dims=["presentation", "neuroid"],
    )


def source_assembly(assembly_cls, candidates, stimulus_ids, objects, dtype):
    """(stimuli, units) as a model assembly. neuroid_id is the candidate's index (keys need not be unique);
    the source's neuroid coords are dropped by XarrayRegression anyway. object_name must be present: the
    stratified CrossValidation asserts it on the source too."""
    n = candidates.shape[0]
    return assembly_cls(
        np.ascontiguousarray(np.asarray(candidates, dtype=dtype).T),
        coords={
            "stimulus_id": ("presentation", stimulus_ids),
            "object_name": ("presentation", objects),
            "neuroid_id": ("neuroid", np.arange(n)),
            "candidate_index": ("neuroid", np.arange(n)),
            "region": ("neuroid", np.array(["model"] * n)),
        },
        dims=["presentation", "neuroid"],
    )


def trial_assembly(assembly_cls, trials, site_ids, regions, stimulus_ids, objects):
    """(stimuli x reps, sites) with a `repetition` presentation coord, as the un-averaged assemblies that
    Brain-Score's benchmarks give to internal_consistency. Missing trials stay NaN (averaged with skipna)."""
    n_sites, n_stim, n_reps = trials.shape
    values = trials.transpose(2, 1, 0).reshape(n_reps * n_stim, n_sites)  # rows: rep-major, then stimulus
    return assembly_cls(
        values,
        coords={
            "stimulus_id": ("presentation", np.tile(stimulus_ids, n_reps)),
            "object_name": ("presentation", np.tile(objects, n_reps)),
            "repetition": ("presentation", np.repeat(np.arange(n_reps), n_stim)),
            "neuroid_id": ("neuroid", site_ids),
            "region": ("neuroid", regions),
        },
        dims=["presentation", "neuroid"],
    )


# ------------------------------------------------------------------------------------ split injection


class FixedSplits:
    """Stands in for the sklearn splitter inside brainscore_vision's `Split`: `Split.build_splits` calls
    `self._split.split(np.zeros(n), stratification_labels)` and uses the (train, test) index pairs, which
    index the target assembly's `stimulus_id` values in the assembly's order."""

    def __init__(self, pairs):
        self.pairs = [(np.asarray(tr, dtype=int), np.asarray(te, dtype=int)) for tr, te in pairs]

    def split(self, x, y=None, groups=None):
        for tr, te in self.pairs:
            if tr.max(initial=-1) >= len(x) or te.max(initial=-1) >= len(x):
                raise ValueError("split index out of range of the target assembly")
            yield tr, te

    def get_n_splits(self, x=None, y=None, groups=None):
        return len(self.pairs)


class RecordingSplitter:
    """Wraps Brain-Score's own sklearn splitter and keeps the (train, test) pairs it yields."""

    def __init__(self, inner):
        self.inner = inner
        self.pairs = []

    def split(self, x, y=None, groups=None):
        for tr, te in self.inner.split(x, y, groups):
            self.pairs.append((np.asarray(tr), np.asarray(te)))
            yield tr, te

    def get_n_splits(self, *args, **kwargs):
        return self.inner.get_n_splits(*args, **kwargs)


def record_selections(metric):
    """Wraps the metric's SingleRegression.fit (on this instance only) to keep, per fit (= per split), the
    target neuroid ids and the source neuroid ids (candidate indices) it mapped them to."""
    single = metric.regression._regression
    original_fit = single.fit
    log = []

    def fit(source, target):
        original_fit(source, target)
        log.append(
            (
                np.asarray(target["neuroid_id"].values).astype(str),
                np.asarray(source["neuroid_id"].values)[np.asarray(single.mapping)].astype(int),
            )
        )

    single.fit = fit
    return log


# ------------------------------------------------------------------------------------------- running


def score_to_dict(score, sites, ceiling=None, explained_variance=None):
    """Brain-Score's aggregate of one region: score = mean over splits of the per-split median over sites."""
    raw = score.attrs["raw"]  # (split, neuroid) per-site r, as CrossValidation merged them
    per_split = raw.median(dim="neuroid")
    out = {
        "score": float(score.values),
        "error": float(score.attrs["error"].values) if "error" in score.attrs else None,
        "per_split_median": [float(v) for v in per_split.transpose("split").values],
        "sites": len(sites),
    }
    if ceiling is not None:
        if explained_variance is not None:
            ceiled = explained_variance(score, ceiling)
            out["ceiled"] = float(ceiled.values)
        else:
            out["ceiled"] = float(score.values) ** 2 / float(ceiling.values)
        out["ceiling"] = float(ceiling.values)
        out["ceiled_convention"] = "r**2 / ceiling (neural_common.explained_variance)"
    return out


def raw_matrix(score, site_ids, n_splits):
    """(sites, splits) from the score's raw (split, neuroid) values, matched by neuroid_id and split."""
    raw = score.attrs["raw"]
    ids = np.asarray(raw["neuroid_id"].values).astype(str)
    splits = np.asarray(raw["split"].values).astype(int)
    vals = np.asarray(raw.transpose("split", "neuroid").values, dtype=np.float64)
    pos = {s: i for i, s in enumerate(site_ids)}
    out = np.full((len(site_ids), n_splits), np.nan)
    for j, sp in enumerate(splits):
        for k, sid in enumerate(ids):
            out[pos[sid], sp] = vals[j, k]
    return out


def run_n2n(bs, d, keep, source, splitter_factory, region_order, ceilings):
    """Runs load_metric('neuron_to_neuron') once per region. splitter_factory(metric) installs a splitter
    in the metric and returns it; its .pairs are the (train, test) index pairs used. Returns per-site r and
    selected candidate index (sites x splits, NaN / -1 for excluded sites), the per-region aggregates and
    the pairs."""
    assembly_cls, load_metric, _, explained_variance = bs
    site_ids = d["site_ids"]
    n_sites = len(site_ids)
    per_region, pairs_seen = {}, None
    r_all, sel_all = None, None
    for region in region_order:
        idx = np.flatnonzero((d["regions"] == region) & keep)
        if len(idx) == 0:
            continue
        target = target_assembly(
            assembly_cls, d["responses"][idx], site_ids[idx], d["regions"][idx], d["stimulus_ids"], d["objects"]
        )
        metric = load_metric("neuron_to_neuron")
        splitter = splitter_factory(metric)
        log = record_selections(metric)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NaN r of constant units in SingleRegression, xarray FutureWarnings
            score = metric(source, target)
        n_splits = len(splitter.pairs)
        if pairs_seen is None:
            pairs_seen = splitter.pairs
            r_all = np.full((n_sites, n_splits), np.nan)
            sel_all = np.full((n_sites, n_splits), -1, dtype=int)
        r_all[idx] = raw_matrix(score, site_ids[idx], n_splits)
        pos = {s: i for i, s in enumerate(site_ids)}
        for sp, (tids, cand) in enumerate(log):
            for t, c in zip(tids, cand, strict=False):
                sel_all[pos[t], sp] = c
        per_region[region] = score_to_dict(score, idx, ceilings.get(region), explained_variance)
    if pairs_seen is None:
        raise SystemExit("no site left to score (see excluded_sites)")
    return r_all, sel_all, per_region, pairs_seen


def masks_from_pairs(pairs, target_stimulus_ids, stimulus_ids):
    """Training masks over the input stimulus order from index pairs over the target assembly's order."""
    pos = {s: i for i, s in enumerate(stimulus_ids)}
    order = np.array([pos[s] for s in target_stimulus_ids])
    masks = np.zeros((len(pairs), len(stimulus_ids)), dtype=bool)
    for k, (tr, _te) in enumerate(pairs):
        masks[k, order[np.asarray(tr, dtype=int)]] = True
    return masks


def internal_consistency(bs, d, keep, region_order):
    assembly_cls, _, load_ceiling, _ = bs
    trials = d["trials"]
    site_ids = d["site_ids"]
    n_sites = len(site_ids)
    per_region, ceilings, per_site, rep_splits = {}, {}, None, None
    for region in region_order:
        idx = np.flatnonzero((d["regions"] == region) & keep)
        if len(idx) == 0:
            continue
        assembly = trial_assembly(
            assembly_cls, trials[idx], site_ids[idx], d["regions"][idx], d["stimulus_ids"], d["objects"]
        )
        ceiler = load_ceiling("internal_consistency")
        split = ceiler._consistency._cross_validation._split  # brainscore_vision Split over `repetition`
        recorder = RecordingSplitter(split._split)
        split._split = recorder
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ceiling = ceiler(assembly)
        raw = ceiling.attrs["raw"]
        n_splits = len(raw["split"])
        if per_site is None:
            per_site = np.full((n_sites, n_splits), np.nan)
            reps = np.unique(assembly["repetition"].values)  # Split uses unique_split_values=True
            rep_splits = [{"half1": reps[tr].tolist(), "half2": reps[te].tolist()} for tr, te in recorder.pairs]
        per_site[idx] = raw_matrix(ceiling, site_ids[idx], n_splits)
        per_region[region] = {
            "ceiling": float(ceiling.values),
            "error": float(ceiling.attrs["error"].values) if "error" in ceiling.attrs else None,
            "per_split_median": [float(v) for v in raw.median(dim="neuroid").values],
            "sites": len(idx),
        }
        ceilings[region] = ceiling
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = {
            "per_split": per_site,
            "mean_over_splits": np.nanmean(per_site, axis=1),
            "median_over_splits": np.nanmedian(per_site, axis=1),
        }
    return per_region, ceilings, summary, rep_splits


# --------------------------------------------------------------------------------------------- main


def excluded_sites(d, split_sets):
    """Sites Brain-Score cannot score: non-finite responses, or constant on a training set (SingleRegression's
    np.nanargmax raises on an all-NaN row)."""
    out = []
    for i, _sid in enumerate(d["site_ids"]):
        y = d["responses"][i]
        if not np.isfinite(y).all():
            out.append((i, "non-finite responses"))
            continue
        for name, masks in split_sets:
            if any(np.ptp(y[m]) == 0 for m in masks):
                out.append((i, f"constant on a training set ({name})"))
                break
    return out


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    return x


def versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ("brainscore-vision", "brainscore-core", "numpy", "scipy", "scikit-learn", "xarray", "pandas"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


NOTES = [
    "neuron_to_neuron = CrossRegressedCorrelation(regression=single_regression(), correlation=pearsonr_correlation()) "
    "(brainscore_vision/metrics/regression_correlation/__init__.py: 'neuron_to_neuron' -> 'neuron_to_neuron_cv').",
    "SingleRegression.fit (metric.py): r[target, source] with its own pearsonr (centre, divide by the L2 norm, "
    "sum) on the training stimuli; mapping = np.nanargmax(r, axis=1): the highest SIGNED r, the first source "
    "neuroid on ties, NaN (constant) units skipped. predict: the chosen unit's raw activation, no fit or scaling.",
    "Held-out score: scipy.stats.pearsonr(target, prediction) per site on the test stimuli "
    "(XarrayCorrelation, metric_helpers/xarray_utils.py).",
    "Default splits: Split(splits=10, train_size=0.9, stratification_coord='object_name', random_state=1) -> "
    "sklearn StratifiedShuffleSplit over the target assembly's stimulus order (metric_helpers/transformations.py).",
    "Aggregation: median over sites per split (CrossRegressedCorrelation.aggregate), then mean over splits "
    "(Split.aggregate); error = std over splits of those medians / sqrt(n_splits). Not the median over sites of "
    "per-site means.",
    "Ceiling: InternalConsistency = mean over 10 ShuffleSplits of the repetitions (train_size=0.5, random_state=1) "
    "of the median over sites of the Spearman-Brown-corrected split-half r (metrics/internal_consistency/ceiling.py).",
    "Ceiled neural score in brainscore_vision 2.4.x: explained_variance(score, ceiling) = score**2 / ceiling "
    "(benchmark_helpers/neural_common.py), NOT score / ceiling.",
    "Candidates are passed to Brain-Score as --source-dtype (default float64); with float32 the selection r is "
    "computed in float32 precision as Brain-Score does on float32 model activations.",
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument(
        "--source-dtype",
        choices=["float64", "float32"],
        default="float64",
        help="dtype of the candidate activations handed to Brain-Score (default float64)",
    )
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.time()

    def say(msg):
        if not args.quiet:
            print(f"[{time.time() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    d = load_input(args.input)
    bs = _import_brainscore()
    assembly_cls, load_metric, _, _ = bs
    say(f"{d['responses'].shape[0]} sites x {d['responses'].shape[1]} stimuli, {d['candidates'].shape[0]} candidates")

    # Brain-Score's default splits, known in advance to pre-screen sites (same splitter, same random_state).
    probe_metric = load_metric("neuron_to_neuron")
    full_target = target_assembly(
        assembly_cls, d["responses"], d["site_ids"], d["regions"], d["stimulus_ids"], d["objects"]
    )
    cv_values, probe_pairs = probe_metric.cross_validation._split.build_splits(full_target)
    target_ids = np.asarray(full_target["stimulus_id"].values).astype(str)
    probe_masks = masks_from_pairs(probe_pairs, target_ids, d["stimulus_ids"])
    split_sets = [("standard", probe_masks)]
    if "train_masks" in d:
        split_sets.append(("explicit", d["train_masks"]))
    excl = excluded_sites(d, split_sets)
    keep = np.ones(len(d["site_ids"]), dtype=bool)
    keep[[i for i, _ in excl]] = False

    _, first = np.unique(d["regions"], return_index=True)
    region_order = [str(d["regions"][i]) for i in sorted(first)]
    source = source_assembly(
        assembly_cls,
        d["candidates"],
        d["stimulus_ids"],
        d["objects"],
        np.float64 if args.source_dtype == "float64" else np.float32,
    )
    keys = d["candidate_keys"]

    out = {
        "format": FORMAT,
        "inputs": {
            "sites": len(d["site_ids"]),
            "stimuli": len(d["stimulus_ids"]),
            "candidates": int(d["candidates"].shape[0]),
            "explicit_splits": int(d["train_masks"].shape[0]) if "train_masks" in d else 0,
            "trials": "trials" in d,
            "reps": int(d["trials"].shape[2]) if "trials" in d else 0,
            "source_dtype": args.source_dtype,
        },
        "site_ids": d["site_ids"],
        "regions": d["regions"],
        "region_order": region_order,
        "excluded_sites": [{"site_id": d["site_ids"][i], "reason": why} for i, why in excl],
    }

    ceilings = {}
    if "trials" in d:
        say("internal consistency")
        per_region, ceilings, per_site, rep_splits = internal_consistency(bs, d, keep, region_order)
        out["internal_consistency"] = {"per_region": per_region, "per_site": per_site, "repetition_splits": rep_splits}

    def selected_keys(sel):
        return [[keys[c] if c >= 0 else None for c in row] for row in sel]

    if "train_masks" in d:
        say(f"neuron_to_neuron on {d['train_masks'].shape[0]} explicit splits")
        pos = {s: i for i, s in enumerate(d["stimulus_ids"])}
        order = np.array([pos[s] for s in target_ids])  # target position -> input position (identity here)
        pairs = [(np.flatnonzero(m[order]), np.flatnonzero(~m[order])) for m in d["train_masks"]]

        def install_fixed(metric):
            fixed = FixedSplits(pairs)
            metric.cross_validation._split._split = fixed
            return fixed

        r, sel, per_region, _ = run_n2n(bs, d, keep, source, install_fixed, region_order, ceilings)
        out["explicit"] = {"r": r, "selected": selected_keys(sel), "selected_index": sel, "per_region": per_region}

    say("neuron_to_neuron with Brain-Score's default splits")

    def install_recorder(metric):
        split = metric.cross_validation._split
        rec = RecordingSplitter(split._split)
        split._split = rec
        return rec

    r, sel, per_region, pairs = run_n2n(bs, d, keep, source, install_recorder, region_order, ceilings)
    masks = masks_from_pairs(pairs, target_ids, d["stimulus_ids"])
    if not np.array_equal(masks, probe_masks):  # the splitter is seeded: the pre-screen saw the same splits
        raise SystemExit("Brain-Score's default splits differ between two builds of the metric")
    inner = probe_metric.cross_validation._split._split
    out["standard"] = {
        "splits": {
            "class": type(inner).__name__,
            "n_splits": int(inner.get_n_splits()),
            "train_size": inner.train_size,
            "test_size": inner.test_size,
            "random_state": inner.random_state,
            "stratification_coord": probe_metric.cross_validation._stratification_coord,
            "train_masks": masks,
        },
        "r": r,
        "selected": selected_keys(sel),
        "selected_index": sel,
        "per_region": per_region,
    }

    out["versions"] = versions()
    out["notes"] = NOTES
    out["seconds"] = round(time.time() - t0, 3)
    with open(args.output, "w") as f:
        json.dump(jsonable(out), f)
    say(f"wrote {args.output}")
    return out


if __name__ == "__main__":
    main()
