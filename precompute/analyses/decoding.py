"""Category decoding with a linear SVM (Figures 5, S5, S6): does a matched population carry the brain's code?

Populations of a region (all in site order, so feature k of every population stands for site k):
  neural   the sites' trial-averaged responses
  matched  each site's best unit (rank 1 of `matches`); for the `pixels` control these are its pixels,
           which is the paper's "Pixels" bar
  random   for each site, one of the gathered random units (unit_activations reason 'random') of the
           layer of its best unit: the paper's unmatched baseline, redrawn every run
  pixels   the `pixels` control's matched units (when it is matched on the dataset), condition (i) only,
           stored beside every other model as train/test population 'pixels' (the same rows for every model)
Conditions: (i) train and test on one population (stratified 90/10 splits), (ii) train on matched (or
random) and test on neural, (iii) train on neural and test on matched (or random); (ii) and (iii) use
all stimuli of both. Features are z-scored with the statistics of the data the decoder is fitted on;
in (ii)/(iii) each population is z-scored with its own statistics. Classifier: scikit-learn LinearSVC
(squared hinge, L2, one-vs-rest, primal solver: n_stimuli > n_features). Regularisation C is chosen
from C_GRID by mean accuracy over stratified random 90/10 splits of the training data.

Held-out variant (`variant` 'heldout'): each site's unit is the one the matching run chose on folds 0-4 of
the dataset (stimulus_folds, stratified by object) over ALL units of the model (split_matches), and the
decoders are trained and tested on folds 5-9 only, so the selection never saw a stimulus that is decoded.
(The in-sample variant's units were chosen on every stimulus: a unit chosen to follow a site on all images
carries some of the site's category signal even when the model has none, e.g. the random control; the
held-out variant is the one to compare with chance.)

Protocols (`--protocol`):
  paper    (i) 25 runs, (ii)/(iii) 5 runs, C chosen per run by 10 splits over 6 values: ~60 fits a run
  default  (i) 10 runs, (ii)/(iii) 1 run, C chosen once per training population by 5 splits over 4 values
           and shared by its runs (with a shared C, (ii)/(iii) are deterministic: one run says it all); in the
           held-out variant C is chosen on folds 0-4, never on the decoded stimuli
Chance = 1 / number of categories. Rows: `decoding` (every run), `confusions` (row-normalised confusion
matrices, averaged over the runs of each condition).
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from precompute.analyses import common
from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.datasets.folds import SPLIT_HALF_TRAIN_FOLDS
from precompute.statistics.resample import rng_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Protocol:
    """How many runs and how C is chosen."""

    runs_within: int
    runs_transfer: int
    cv_splits: int
    c_grid: tuple[float, ...]
    per_run_c: bool
    test_fraction: float = 0.1


PAPER = Protocol(
    runs_within=25, runs_transfer=5, cv_splits=10, c_grid=(1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0), per_run_c=True
)
DEFAULT = Protocol(runs_within=10, runs_transfer=1, cv_splits=5, c_grid=(1e-3, 1e-2, 1e-1, 1.0), per_run_c=False)


def protocol_for(name: str) -> Protocol:
    return PAPER if name == "paper" else DEFAULT


# ---------------------------------------------------------------------------------------------- pure functions
def zscore_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and SD (SD 1 for a constant feature, which then standardises to 0)."""
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    return mean, np.where(sd > 0, sd, 1.0)


def zscore(x: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """x standardised with `stats` (default: its own)."""
    mean, sd = stats if stats is not None else zscore_stats(x)
    return (x - mean) / sd


def fit_svm(x: np.ndarray, y: np.ndarray, c: float):
    """A LinearSVC fitted on z-scored x; returns (classifier, z-score statistics).

    A fit is a deterministic function of (x, y, C) (the primal solver has no randomness), so a repeated fit
    (the neural decoder of condition (iii), used against the matched and the random units, and by every
    model) is taken from a small in-process cache instead of being refitted."""
    key = (_digest(x), _digest(y), float(c))
    hit = _FIT_CACHE.get(key)
    if hit is not None:
        _FIT_CACHE.move_to_end(key)
        return hit
    out = _fit_svm(x, y, c)
    _remember(_FIT_CACHE, key, out)
    return out


def _fit_svm(x: np.ndarray, y: np.ndarray, c: float):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    stats = zscore_stats(x)
    clf = LinearSVC(C=c, dual=False, max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few iterations short changes nothing here
        clf.fit(zscore(x, stats), y)
    return clf, stats


#: in-process caches (least recently used first): fits by (x, y, C) and the model-independent decoders
#: (neural populations, the pixels bar) by their inputs and seed keys, so every model after the first
#: reuses them; a cached result is the one the computation gives (same inputs, same seeded draws)
_FIT_CACHE: OrderedDict = OrderedDict()
_SHARED_CACHE: OrderedDict = OrderedDict()
CACHE_ENTRIES = 64


def _digest(a: np.ndarray) -> tuple:
    a = np.ascontiguousarray(a)
    return a.shape, a.dtype.str, hashlib.blake2b(a.view(np.uint8).reshape(-1), digest_size=16).digest()


def _remember(cache: OrderedDict, key, value) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > CACHE_ENTRIES:
        cache.popitem(last=False)


def stratified_split(y: np.ndarray, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: per category, round(test_fraction * count) (at least 1) stimuli to test."""
    train, test = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        k = max(1, round(test_fraction * len(idx))) if len(idx) > 1 else 0
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def choose_c(x: np.ndarray, y: np.ndarray, protocol: Protocol, rng: np.random.Generator) -> float:
    """The C of the grid with the best mean accuracy over `cv_splits` stratified 90/10 splits (ties: smaller C)."""
    scores = np.zeros(len(protocol.c_grid))
    for _ in range(protocol.cv_splits):
        tr, te = stratified_split(y, protocol.test_fraction, rng)
        for j, c in enumerate(protocol.c_grid):
            clf, stats = fit_svm(x[tr], y[tr], c)
            scores[j] += float((clf.predict(zscore(x[te], stats)) == y[te]).mean())
    return float(protocol.c_grid[int(np.argmax(scores))])


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Row-normalised confusion matrix (rows: true class; NaN row when a class is absent)."""
    m = np.zeros((n_classes, n_classes))
    np.add.at(m, (y_true, y_pred), 1.0)
    total = m.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        return m / np.where(total > 0, total, np.nan)


@dataclass
class RunResult:
    accuracy: float
    c: float
    confusion: np.ndarray


def decode_within(
    x_of_run, y: np.ndarray, protocol: Protocol, rng: np.random.Generator, n_classes: int, c: float | None = None
) -> list[RunResult]:
    """Condition (i): per run, a stratified 90/10 split; C per run (paper) or the given shared C.

    `x_of_run(run)` gives the run's features (stimuli, features): a fixed population, or a redrawn one."""
    out = []
    for run in range(protocol.runs_within):
        x = x_of_run(run)
        tr, te = stratified_split(y, protocol.test_fraction, rng)
        c_run = c if c is not None and not protocol.per_run_c else choose_c(x[tr], y[tr], protocol, rng)
        clf, stats = fit_svm(x[tr], y[tr], c_run)
        pred = clf.predict(zscore(x[te], stats))
        out.append(RunResult(float((pred == y[te]).mean()), c_run, confusion(y[te], pred, n_classes)))
    return out


def decode_transfer(
    train_of_run,
    test_of_run,
    y: np.ndarray,
    protocol: Protocol,
    rng: np.random.Generator,
    n_classes: int,
    c: float | None = None,
) -> list[RunResult]:
    """Conditions (ii)/(iii): fit on one population over all stimuli, test on the other (each z-scored on its own)."""
    out = []
    for run in range(protocol.runs_transfer):
        xtr, xte = train_of_run(run), test_of_run(run)
        c_run = c if c is not None and not protocol.per_run_c else choose_c(xtr, y, protocol, rng)
        clf, _ = fit_svm(xtr, y, c_run)
        pred = clf.predict(zscore(xte))
        out.append(RunResult(float((pred == y).mean()), c_run, confusion(y, pred, n_classes)))
    return out


def random_population(site_layers: np.ndarray, pool_layers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each site, the index (into the pool) of a random unit from the layer of its best unit.

    Drawn without replacement within a layer while the layer's pool lasts; a layer without pooled units
    falls back to the whole pool (logged by the caller)."""
    picks = np.empty(len(site_layers), dtype=np.int64)
    for layer in np.unique(site_layers):
        sites = np.flatnonzero(site_layers == layer)
        pool = np.flatnonzero(pool_layers == layer)
        if pool.size == 0:
            pool = np.arange(len(pool_layers))
        picks[sites] = rng.choice(pool, size=len(sites), replace=len(sites) > pool.size)
    return picks


# ---------------------------------------------------------------------------------------------- analysis
def _rows(region, train, test, variant, results, chance):
    return [(region, train, test, variant, k, r.accuracy, chance, r.c) for k, r in enumerate(results)]


def _confusion_rows(region, train, test, variant, results, categories):
    mean = np.nanmean(np.stack([r.confusion for r in results]), axis=0)
    return [
        (region, train, test, variant, categories[i], categories[j], float(mean[i, j]))
        for i in range(len(categories))
        for j in range(len(categories))
        if np.isfinite(mean[i, j])
    ]


def run_decoding(ctx: AnalysisContext) -> None:
    """Write `decoding` and `confusions` for one (dataset, model), both regions, both variants."""
    protocol = protocol_for(ctx.protocol)
    cats = ctx.con.execute("SELECT category FROM stimuli WHERE dataset = ? ORDER BY idx", [ctx.dataset]).fetchall()
    labels = pd.Series([c for (c,) in cats])
    if labels.isna().any() or labels.nunique() < 2:
        log.warning("decoding %s: stimuli need a category (>= 2 categories); skipped", ctx.dataset)
        return
    categories = sorted(labels.unique())
    y_all = labels.map({c: i for i, c in enumerate(categories)}).to_numpy(np.int64)
    n_classes = len(categories)
    chance = 1.0 / n_classes
    best = ctx.best_matches()
    responses = ctx.responses()
    split_units = ctx.split_units(SPLIT_HALF_TRAIN_FOLDS)
    folds = ctx.folds()
    pool = _random_pool(ctx)
    pixels_model = _pixels_model(ctx)
    rows, conf_rows = [], []
    t0 = time.perf_counter()
    for region, group in best.groupby("region", sort=True):
        group = group[group["r"].notna()]
        units = common.units_of(group)
        stored = ctx.activations(units)
        have = np.array([u in stored for u in units], bool)
        if not have.all():
            ctx.request_activations([u for u, h in zip(units, have, strict=True) if not h])
        resp = responses[group["idx"].to_numpy(int)]
        stim = np.isfinite(resp).all(axis=0)
        neural = resp[:, stim].T
        matched = ctx.activation_matrix(units)[:, stim].T.astype(np.float64)
        y = y_all[stim]
        rng = ctx.rng(region)
        # the neural-only decoders and the halves do not depend on the model: same draws for every model

        def fixed(x):
            return lambda run: x

        def c_for(x, yy, rng=rng):
            return None if protocol.per_run_c else choose_c(x, yy, protocol, rng)

        c_neural, res = shared_within(
            (ctx.seed, ctx.dataset, region, "neural"),
            neural,
            y,
            protocol,
            lambda region=region: _shared_rng(ctx, region, "neural"),
            n_classes,
        )
        c_matched = c_for(matched, y)
        rows += _rows(region, "neural", "neural", "in_sample", res, chance)
        conf_rows += _confusion_rows(region, "neural", "neural", "in_sample", res, categories)
        for train, test, results in (
            ("matched", "matched", decode_within(fixed(matched), y, protocol, rng, n_classes, c_matched)),
            (
                "matched",
                "neural",
                decode_transfer(fixed(matched), fixed(neural), y, protocol, rng, n_classes, c_matched),
            ),
            (
                "neural",
                "matched",
                decode_transfer(fixed(neural), fixed(matched), y, protocol, rng, n_classes, c_neural),
            ),
        ):
            rows += _rows(region, train, test, "in_sample", results, chance)
            conf_rows += _confusion_rows(region, train, test, "in_sample", results, categories)
        if pool is not None:
            site_layers = group["layer_idx"].to_numpy(np.int64)
            draws = [
                random_population(site_layers, pool[0], ctx.rng(region, "random", str(k)))
                for k in range(max(protocol.runs_within, protocol.runs_transfer))
            ]

            def random_x(run, draws=draws, stim=stim):
                return pool[1][draws[run]][:, stim].T.astype(np.float64)

            c_random = c_for(random_x(0), y)
            for train, test, results in (
                ("random", "random", decode_within(random_x, y, protocol, rng, n_classes, c_random)),
                ("random", "neural", decode_transfer(random_x, fixed(neural), y, protocol, rng, n_classes, c_random)),
                ("neural", "random", decode_transfer(fixed(neural), random_x, y, protocol, rng, n_classes, c_neural)),
            ):
                rows += _rows(region, train, test, "in_sample", results, chance)
                conf_rows += _confusion_rows(region, train, test, "in_sample", results, categories)
        if pixels_model is not None:
            # the paper's "Pixels" bar beside every model: the pixels control's matched units, condition (i)
            px_best = ctx.best_matches(model=pixels_model)
            px_best = px_best[px_best["region"] == region].set_index("site_id").reindex(group["site_id"])
            if px_best["r"].notna().all():
                px = ctx.activation_matrix(common.units_of(px_best.reset_index()), model=pixels_model)
                px = px[:, stim].T.astype(np.float64)
                _, res = shared_within(
                    (ctx.seed, ctx.dataset, region, "pixels"),
                    px,
                    y,
                    protocol,
                    lambda region=region: _shared_rng(ctx, region, "pixels"),
                    n_classes,
                )
                rows += _rows(region, "pixels", "pixels", "in_sample", res, chance)
                conf_rows += _confusion_rows(region, "pixels", "pixels", "in_sample", res, categories)
        # held-out variant: each site's unit chosen on folds 0-4 over all units (split_matches), decoders trained
        # and tested on folds 5-9 only: the selection never saw a decoded stimulus
        chosen = [split_units[int(i)] for i in group["idx"]]
        held_all = ctx.unit_values(chosen)[:, stim].T
        usable = np.isfinite(held_all).all(axis=0)
        if not usable.all():
            log.info(
                "decoding %s %s: %d sites without a unit chosen on folds 0-%d are left out of the held-out variant",
                ctx.model,
                region,
                int((~usable).sum()),
                SPLIT_HALF_TRAIN_FOLDS - 1,
            )
        half_b = folds[stim] >= SPLIT_HALF_TRAIN_FOLDS
        held = held_all[half_b][:, usable]
        nb, yb = neural[half_b][:, usable], y[half_b]
        # C is tuned on folds 0-4 too (default protocol; the paper protocol tunes it inside each run's training
        # set): nothing about the decoded stimuli is seen before a decoder is tested on them
        tune_y = y[~half_b]
        c_nb, res_nb = shared_within(
            (ctx.seed, ctx.dataset, region, "heldout-neural", tuple(np.flatnonzero(usable))),
            nb,
            yb,
            protocol,
            lambda region=region: _shared_rng(ctx, region, "heldout-neural"),
            n_classes,
            tune=(neural[~half_b][:, usable], tune_y),
        )
        c_held = c_for(held_all[~half_b][:, usable], tune_y)
        for train, test, results in (
            ("neural", "neural", res_nb),
            ("matched", "matched", decode_within(fixed(held), yb, protocol, rng, n_classes, c_held)),
            ("matched", "neural", decode_transfer(fixed(held), fixed(nb), yb, protocol, rng, n_classes, c_held)),
            ("neural", "matched", decode_transfer(fixed(nb), fixed(held), yb, protocol, rng, n_classes, c_nb)),
        ):
            rows += _rows(region, train, test, "heldout", results, chance)
            conf_rows += _confusion_rows(region, train, test, "heldout", results, categories)
    cols = ["region", "train_population", "test_population", "variant", "run", "accuracy", "chance", "c"]
    common.replace_rows(ctx.con, "decoding", ctx.dataset, ctx.model, pd.DataFrame(rows, columns=cols))
    ccols = [
        "region",
        "train_population",
        "test_population",
        "variant",
        "true_category",
        "predicted_category",
        "fraction",
    ]
    common.replace_rows(ctx.con, "confusions", ctx.dataset, ctx.model, pd.DataFrame(conf_rows, columns=ccols))
    log.info(
        "decoding %s x %s (%s protocol): %d runs in %.1f s",
        ctx.dataset,
        ctx.model,
        ctx.protocol,
        len(rows),
        time.perf_counter() - t0,
    )


def _pixels_model(ctx: AnalysisContext) -> str | None:
    """The pixels control matched on this dataset (`pixels` first), unless the analysed model is one."""
    rows = ctx.con.execute(
        "SELECT m.model FROM models m JOIN match_runs r ON r.model = m.model AND r.dataset = ? "
        "WHERE m.kind = 'control' AND m.family = 'pixels' ORDER BY m.model <> 'pixels', m.model",
        [ctx.dataset],
    ).fetchall()
    names = [m for (m,) in rows]
    if not names or ctx.model in names:
        return None
    return names[0]


def _shared_rng(ctx: AnalysisContext, region: str, what: str) -> np.random.Generator:
    """A generator that depends on the seed, dataset, region and purpose but not on the model."""
    return rng_for(ctx.seed, "decoding", ctx.dataset, region, what)


def shared_within(
    key: tuple,
    x: np.ndarray,
    y: np.ndarray,
    protocol: Protocol,
    rng_of,
    n_classes: int,
    tune: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float | None, list[RunResult]]:
    """(shared C or None, condition (i) runs) of a model-independent population, whose generator `rng_of()` is
    seeded by `key` alone: computed once per process for the same inputs and reused by every model.

    `tune`: (features, labels) to choose the shared C on instead of (x, y) (other stimuli than the runs')."""
    tune_x, tune_y = tune if tune is not None else (x, y)
    full = (key, protocol, _digest(x), _digest(y), _digest(tune_x), n_classes)
    hit = _SHARED_CACHE.get(full)
    if hit is not None:
        _SHARED_CACHE.move_to_end(full)
        return hit
    rng = rng_of()
    c = None if protocol.per_run_c else choose_c(tune_x, tune_y, protocol, rng)
    out = (c, decode_within(lambda run: x, y, protocol, rng, n_classes, c))
    _remember(_SHARED_CACHE, full, out)
    return out


def _random_pool(ctx: AnalysisContext) -> tuple[np.ndarray, np.ndarray] | None:
    """(layer_idx per unit, activations (units, stimuli)) of the gathered random units, or None."""
    df = ctx.con.execute(
        "SELECT layer_idx, channel, y, x FROM unit_activations WHERE dataset = ? AND model = ? AND reason = 'random' "
        "ORDER BY layer_idx, channel, y, x",
        [ctx.dataset, ctx.model],
    ).df()
    if df.empty:
        log.warning(
            "decoding %s x %s: no gathered random units; the random baseline is skipped", ctx.dataset, ctx.model
        )
        return None
    units = common.units_of(df)
    return df["layer_idx"].to_numpy(np.int64), ctx.activation_matrix(units)


register(
    Analysis(
        "decoding",
        "linear-SVM category decoding from neural, matched, random units; conditions (i)-(iii) (Figs. 5, S5, S6)",
        run_decoding,
        default_models="primary",
    )
)
