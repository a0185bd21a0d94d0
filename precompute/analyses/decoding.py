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

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from precompute.analyses import common
from precompute.analyses.context import AnalysisContext
from precompute.analyses.decoders import (
    Protocol,
    RunResult,
    choose_c,
    decode_transfer,
    decode_within,
    protocol_for,
    random_population,
    shared_within,
)
from precompute.analyses.registry import Analysis, register
from precompute.datasets.folds import SPLIT_HALF_TRAIN_FOLDS
from precompute.statistics.resample import rng_for

log = logging.getLogger(__name__)


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


@dataclass
class _Region:
    """One region's decoding: the stimuli every site responded to (`stim`), their labels, the neural
    population (stimuli, sites), the generator the model's decoders share (in call order), and the rows so far."""

    ctx: AnalysisContext
    protocol: Protocol
    region: str
    categories: list
    stim: np.ndarray
    y: np.ndarray
    neural: np.ndarray
    rng: np.random.Generator
    rows: list = field(default_factory=list)
    conf_rows: list = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.categories)

    def add(self, train: str, test: str, variant: str, results: list[RunResult]) -> None:
        self.rows += _rows(self.region, train, test, variant, results, 1.0 / self.n_classes)
        self.conf_rows += _confusion_rows(self.region, train, test, variant, results, self.categories)

    def c_for(self, x: np.ndarray, y: np.ndarray) -> float | None:
        """The C shared by a training population's runs (default protocol), or None (paper: C per run)."""
        return None if self.protocol.per_run_c else choose_c(x, y, self.protocol, self.rng)

    def shared(self, what: str, x: np.ndarray, y: np.ndarray, key: tuple = (), tune=None):
        """shared_within for a model-independent population (`what`): the same draws for every model."""
        return shared_within(
            (self.ctx.seed, self.ctx.dataset, self.region, what, *key),
            x,
            y,
            self.protocol,
            lambda: _shared_rng(self.ctx, self.region, what),
            self.n_classes,
            tune=tune,
        )


def _fixed(x: np.ndarray):
    return lambda run: x


def run_decoding(ctx: AnalysisContext) -> None:
    """Write `decoding` and `confusions` for one (dataset, model), both regions, both variants."""
    protocol = protocol_for(ctx.protocol)
    labels = pd.Series(ctx.categories())
    if labels.isna().any() or labels.nunique() < 2:
        log.warning("decoding %s: stimuli need a category (>= 2 categories); skipped", ctx.dataset)
        return
    categories = sorted(labels.unique())
    y_all = labels.map({c: i for i, c in enumerate(categories)}).to_numpy(np.int64)
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
        run = _Region(ctx, protocol, region, categories, stim, y_all[stim], resp[:, stim].T, ctx.rng(region))
        matched = ctx.activation_matrix(units)[:, stim].T.astype(np.float64)
        c_neural = _decode_matched(run, matched)
        if pool is not None:
            _decode_random(run, group, pool, c_neural)
        if pixels_model is not None:
            _decode_pixels(run, group, pixels_model)
        _decode_heldout(run, [split_units[int(i)] for i in group["idx"]], folds)
        rows += run.rows
        conf_rows += run.conf_rows
    cols = ["region", "train_population", "test_population", "variant", "run", "accuracy", "chance", "c"]
    ctx.replace_rows("decoding", pd.DataFrame(rows, columns=cols))
    ccols = [
        "region",
        "train_population",
        "test_population",
        "variant",
        "true_category",
        "predicted_category",
        "fraction",
    ]
    ctx.replace_rows("confusions", pd.DataFrame(conf_rows, columns=ccols))
    log.info(
        "decoding %s x %s (%s protocol): %d runs in %.1f s",
        ctx.dataset,
        ctx.model,
        ctx.protocol,
        len(rows),
        time.perf_counter() - t0,
    )


def _decode_matched(run: _Region, matched: np.ndarray) -> float | None:
    """In-sample conditions (i)-(iii) of the neural and the matched populations; returns the neural decoders'
    shared C (or None). The neural-only decoders do not depend on the model: same draws for every model."""
    p, rng, y, neural, n = run.protocol, run.rng, run.y, run.neural, run.n_classes
    c_neural, res = run.shared("neural", neural, y)
    c_matched = run.c_for(matched, y)
    run.add("neural", "neural", "in_sample", res)
    run.add("matched", "matched", "in_sample", decode_within(_fixed(matched), y, p, rng, n, c_matched))
    run.add("matched", "neural", "in_sample", decode_transfer(_fixed(matched), _fixed(neural), y, p, rng, n, c_matched))
    run.add("neural", "matched", "in_sample", decode_transfer(_fixed(neural), _fixed(matched), y, p, rng, n, c_neural))
    return c_neural


def _decode_random(run: _Region, group: pd.DataFrame, pool: tuple[np.ndarray, np.ndarray], c_neural) -> None:
    """The unmatched baseline: per run, for each site a random gathered unit of its best unit's layer."""
    p, rng, y, neural, n = run.protocol, run.rng, run.y, run.neural, run.n_classes
    site_layers = group["layer_idx"].to_numpy(np.int64)
    draws = [
        random_population(site_layers, pool[0], run.ctx.rng(run.region, "random", str(k)))
        for k in range(max(p.runs_within, p.runs_transfer))
    ]

    def random_x(k):
        return pool[1][draws[k]][:, run.stim].T.astype(np.float64)

    c_random = run.c_for(random_x(0), y)
    run.add("random", "random", "in_sample", decode_within(random_x, y, p, rng, n, c_random))
    run.add("random", "neural", "in_sample", decode_transfer(random_x, _fixed(neural), y, p, rng, n, c_random))
    run.add("neural", "random", "in_sample", decode_transfer(_fixed(neural), random_x, y, p, rng, n, c_neural))


def _decode_pixels(run: _Region, group: pd.DataFrame, pixels_model: str) -> None:
    """The paper's "Pixels" bar beside every model: the pixels control's matched units, condition (i)."""
    px_best = run.ctx.best_matches(model=pixels_model)
    px_best = px_best[px_best["region"] == run.region].set_index("site_id").reindex(group["site_id"])
    if not px_best["r"].notna().all():
        return
    px = run.ctx.activation_matrix(common.units_of(px_best.reset_index()), model=pixels_model)
    _, res = run.shared("pixels", px[:, run.stim].T.astype(np.float64), run.y)
    run.add("pixels", "pixels", "in_sample", res)


def _decode_heldout(run: _Region, chosen: list, folds: np.ndarray) -> None:
    """Held-out variant: each site's unit chosen on folds 0-4 over all units (split_matches), decoders trained
    and tested on folds 5-9 only: the selection never saw a decoded stimulus."""
    ctx, p, rng, y, n = run.ctx, run.protocol, run.rng, run.y, run.n_classes
    held_all = ctx.unit_values(chosen)[:, run.stim].T
    usable = np.isfinite(held_all).all(axis=0)
    if not usable.all():
        log.info(
            "decoding %s %s: %d sites without a unit chosen on folds 0-%d are left out of the held-out variant",
            ctx.model,
            run.region,
            int((~usable).sum()),
            SPLIT_HALF_TRAIN_FOLDS - 1,
        )
    half_b = folds[run.stim] >= SPLIT_HALF_TRAIN_FOLDS
    held = held_all[half_b][:, usable]
    nb, yb = run.neural[half_b][:, usable], y[half_b]
    # C is tuned on folds 0-4 too (default protocol; the paper protocol tunes it inside each run's training
    # set): nothing about the decoded stimuli is seen before a decoder is tested on them
    tune_y = y[~half_b]
    c_nb, res_nb = run.shared(
        "heldout-neural", nb, yb, key=(tuple(np.flatnonzero(usable)),), tune=(run.neural[~half_b][:, usable], tune_y)
    )
    c_held = run.c_for(held_all[~half_b][:, usable], tune_y)
    run.add("neural", "neural", "heldout", res_nb)
    run.add("matched", "matched", "heldout", decode_within(_fixed(held), yb, p, rng, n, c_held))
    run.add("matched", "neural", "heldout", decode_transfer(_fixed(held), _fixed(nb), yb, p, rng, n, c_held))
    run.add("neural", "matched", "heldout", decode_transfer(_fixed(nb), _fixed(held), yb, p, rng, n, c_nb))


def _pixels_model(ctx: AnalysisContext) -> str | None:
    """The pixels control matched on this dataset (`pixels` first), unless the analysed model is one."""
    names = ctx.matched_controls("pixels")
    if not names or ctx.model in names:
        return None
    return names[0]


def _shared_rng(ctx: AnalysisContext, region: str, what: str) -> np.random.Generator:
    """A generator that depends on the seed, dataset, region and purpose but not on the model."""
    return rng_for(ctx.seed, "decoding", ctx.dataset, region, what)


def _random_pool(ctx: AnalysisContext) -> tuple[np.ndarray, np.ndarray] | None:
    """(layer_idx per unit, activations (units, stimuli)) of the gathered random units, or None."""
    df = ctx.gathered_units("random")
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
