"""The statistics' one streaming pass per (dataset, model): extra rows of the matching product, no extra matching.

The null and PLS (and, with --protocol paper, the exact 10-fold neuron_to_neuron) need to look at every unit
again, so they share ONE run of the streaming engine (precompute/match/engine.py) over rows that are not
the sites themselves (the held-out scores of the default protocol need none: the matching run itself
chose each site's unit on the folds' nested training sets, split_matches):

- **training copies** (--protocol paper's n2n): one copy of every site per training set (every fold but
  one), with 0/1 stimulus weights (the engine's weighted groups), so each copy's top-1 is the unit the site
  selects on that training set, searched over ALL units of the model;
- **permuted copies** (the null): every site's responses under an independent random permutation of
  the stimuli (weights 1); each copy's top-1 r is one draw of "the best r of this model with a response
  that has no relation to the images";
- **random projections** (PLS): a tap on the source (projection.py) projects chosen layers' activations of
  every stimulus to `projection_dim` features with a very sparse random projection (Li, Hastie & Church 2006:
  entries +-sqrt(1/(density * dim)) with density 1/sqrt(units)), which keeps inner products (and so
  linear predictivity) up to a small distortion; a layer of U units costs sqrt(U) * dim multiply-adds
  per stimulus and sqrt(U) * dim * 8 bytes of matrix.

Then one gather pass (inference only) fetches the activations of every selected unit over all stimuli,
so held-out r is computed in float64 on the held-out stimuli without running the model again.

Rows are budgeted like units (DESIGN.md, Performance model): each block of S rows (S = sites) costs one
more product the size of the matching itself, and the engine's memory plan splits units into more
passes when the accumulator grows. `PassSpec` says what goes in; the defaults are in `pass_spec`.

The result (`PassResult`, a few MB without projections) is cached per (dataset, model, inputs, protocol,
seed) under `<data folder>/cache/stats/`, so the analyses that share it (`null`, `pls`, and `crossval` with
--protocol paper) run it once. Only the latest pass of a (dataset, model) is kept: writing one removes that
pair's other files (pass_cache.py: the cache's files, their names and `prune_cache`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from precompute.core.feeds import PngFeed
from precompute.datasets.folds import fold_out_masks
from precompute.match.engine import EngineConfig, match_units
from precompute.match.inference import gather_activations
from precompute.match.plan import DEFAULT_RESERVE_BYTES
from precompute.match.results import unit_coords
from precompute.match.rows import RowSet
from precompute.statistics.pass_cache import cache_path, prune_cache, read_npz, write_npz
from precompute.statistics.projection import ProjectingSource
from precompute.statistics.scores import best_layers as region_best_layers

log = logging.getLogger(__name__)

#: Bump when the pass's content or layout changes: old cached results are then ignored.
PASS_VERSION = 3  # 3: training sets are the dataset's folds (10-fold n2n for --protocol paper only)
DEFAULT_PROJECTION_DIM = 1000
#: permuted copies of all sites: default / --protocol paper
DEFAULT_PERMUTATIONS = 1
PAPER_PERMUTATIONS = 4


@dataclass(frozen=True)
class PassSpec:
    """What the pass computes.

    train_masks:       training set name -> boolean mask over stimuli (one row per site and set)
    n_permutations:    permuted copies of all sites (the null)
    projection_layers: layer_idx of the layers projected for PLS
    projection_dim:    features per projected layer
    seed:              seeds the permutations, the projection matrices and the engine's stimulus order
    """

    train_masks: dict[str, np.ndarray]
    n_permutations: int = 0
    projection_layers: tuple[int, ...] = ()
    projection_dim: int = DEFAULT_PROJECTION_DIM
    seed: int = 0

    def summary(self) -> dict:
        """A JSON-able description (cache key): set names with mask digests, counts, layers."""
        return {
            "sets": {k: hashlib.sha1(np.packbits(v).tobytes()).hexdigest()[:12] for k, v in self.train_masks.items()},
            "n_permutations": self.n_permutations,
            "projection_layers": list(self.projection_layers),
            "projection_dim": self.projection_dim,
            "seed": self.seed,
            "version": PASS_VERSION,
        }

    def extra_rows(self, n_sites: int) -> int:
        return n_sites * (len(self.train_masks) + self.n_permutations)


@dataclass
class PassResult:
    """What the pass found. Units are (layer_idx, channel, y, x); -1 where a row has no valid unit.

    set_names, train_masks  (sets,), (sets, stimuli): the training sets, in row-block order
    selected, selected_r    (sets, sites, 4) int, (sets, sites): each training copy's best unit and its training r
    null_max                (permutations, sites): each permuted copy's best r (NaN when none)
    unit_keys, unit_values  (units, 4), (units, stimuli) float32: every selected unit's activations (idx order)
    projections             layer_idx -> (stimuli, projection_dim) float32
    """

    set_names: list[str]
    train_masks: np.ndarray
    selected: np.ndarray
    selected_r: np.ndarray
    null_max: np.ndarray
    unit_keys: np.ndarray
    unit_values: np.ndarray
    projections: dict[int, np.ndarray] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def set_index(self, name: str) -> int:
        return self.set_names.index(name)

    def values_of(self, keys: np.ndarray) -> np.ndarray:
        """(n, stimuli) float64 activations of units `keys` (n, 4); NaN rows for unknown or -1 units."""
        lookup = {tuple(int(v) for v in k): i for i, k in enumerate(self.unit_keys)}
        out = np.full((len(keys), self.unit_values.shape[1]), np.nan)
        for i, k in enumerate(np.asarray(keys).reshape(-1, 4)):
            j = lookup.get(tuple(int(v) for v in k))
            if j is not None:
                out[i] = self.unit_values[j]
        return out

    def save(self, path: Path) -> None:
        arrays = {
            "train_masks": self.train_masks,
            "selected": self.selected,
            "selected_r": self.selected_r,
            "null_max": self.null_max,
            "unit_keys": self.unit_keys,
            "unit_values": self.unit_values,
        }
        for layer, proj in self.projections.items():
            arrays[f"projection_{layer}"] = proj
        write_npz(path, {"set_names": self.set_names, "timings": self.timings}, arrays)

    @classmethod
    def load(cls, path: Path) -> PassResult:
        meta, z = read_npz(path)
        projections = {int(k.removeprefix("projection_")): v for k, v in z.items() if k.startswith("projection_")}
        return cls(
            meta["set_names"],
            z["train_masks"],
            z["selected"],
            z["selected_r"],
            z["null_max"],
            z["unit_keys"],
            z["unit_values"],
            projections,
            meta.get("timings", {}),
        )


# ---------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class RowLayout:
    """Which product row is what: training copy (set, site) rows first, then permuted copies."""

    n_sites: int
    n_sets: int
    n_permutations: int

    def train_row(self, t: int, s: int) -> int:
        return t * self.n_sites + s

    def perm_row(self, p: int, s: int) -> int:
        return (self.n_sets + p) * self.n_sites + s


def build_rows(responses: np.ndarray, spec: PassSpec, rng: np.random.Generator):
    """The engine's RowSet for `spec` (training copies with 0/1 weights, permuted copies) and its layout.

    A row's weights are its training mask AND the stimuli the site has a response to (NaN = missing);
    rows with the same weights share a group. Each permuted copy permutes one site's responses
    (missing ones included) with its own permutation."""
    responses = np.asarray(responses, dtype=np.float64)
    n_sites, n_stim = responses.shape
    present = np.isfinite(responses)
    masks = [np.asarray(m, dtype=bool) for m in spec.train_masks.values()]
    values, weights = [], []
    for mask in masks:
        values.append(responses)
        weights.append(present & mask[None, :])
    for _ in range(spec.n_permutations):
        perm = np.argsort(rng.random((n_sites, n_stim)), axis=1)
        values.append(np.take_along_axis(responses, perm, axis=1))
        weights.append(np.take_along_axis(present, perm, axis=1))
    layout = RowLayout(n_sites, len(masks), spec.n_permutations)
    if not values:
        return RowSet(np.zeros((0, n_stim))), layout
    values_all = np.concatenate(values, axis=0)
    w_all = np.concatenate(weights, axis=0)
    groups, group = np.unique(w_all, axis=0, return_inverse=True)
    values_all = np.where(w_all, values_all, 0.0)
    return RowSet(values_all, group.reshape(-1).astype(np.int64), groups.astype(np.float64)), layout


def projection_bytes(layers, spec: PassSpec, n_stimuli: int) -> int:
    total = 0
    for li in spec.projection_layers:
        units = layers[int(li)].units
        total += 4 * n_stimuli * spec.projection_dim + 8 * spec.projection_dim * int(np.ceil(np.sqrt(units)))
    return total


# ---------------------------------------------------------------------------------------------- the pass
def run_pass(
    source, feed, responses: np.ndarray, spec: PassSpec, *, memory_bytes: int | None = None, progress: str | None = None
) -> PassResult:
    """Run the engine once over `spec`'s rows (projecting layers on the way), then gather the selected units."""

    t_start = time.perf_counter()
    responses = np.asarray(responses, dtype=np.float64)
    n_sites, n_stim = responses.shape
    rng = np.random.default_rng([int(spec.seed), 7])
    rows, layout = build_rows(responses, spec, rng)
    layers = list(source.layers)
    tap = ProjectingSource(source, feed.stimulus_ids, spec.projection_layers, spec.projection_dim, spec.seed)
    set_names = list(spec.train_masks)
    selected = np.full((layout.n_sets, n_sites, 4), -1, np.int64)
    selected_r = np.full((layout.n_sets, n_sites), np.nan)
    null_max = np.full((layout.n_permutations, n_sites), np.nan)
    timings: dict[str, float] = {}
    unit_keys = np.zeros((0, 4), np.int64)
    unit_values = np.zeros((0, n_stim), np.float32)
    if rows.n_rows:
        selected, selected_r, null_max = _match_rows(
            tap, feed, rows, layout, spec, layers, n_stim, memory_bytes=memory_bytes, progress=progress, timings=timings
        )
        unit_keys = np.unique(selected.reshape(-1, 4), axis=0)
        unit_keys = unit_keys[unit_keys[:, 0] >= 0]
    elif spec.projection_layers:
        # nothing to match: an inference pass over the projected layers feeds the tap (unit 0 is a dummy)
        layer_ids = np.array(spec.projection_layers, np.int64)
        gather_activations(tap, feed, layer_ids, np.zeros(len(layer_ids), np.int64))
    if tap.missing():
        raise RuntimeError(f"projection of layers {tap.missing()} did not see every stimulus")
    timings["projection_s"] = tap.seconds
    if len(unit_keys):
        t0 = time.perf_counter()
        unit_values = _gather_units(source, feed, layers, unit_keys)
        timings["gather_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    log.info(
        "%s: statistics pass done in %.1f s (%s)",
        source.model,
        timings["total_s"],
        ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if k != "total_s"),
    )
    return PassResult(
        set_names,
        np.array([spec.train_masks[k] for k in set_names], bool).reshape(-1, n_stim),
        selected,
        selected_r,
        null_max,
        unit_keys,
        unit_values,
        tap.projections,
        timings,
    )


def _match_rows(
    tap, feed, rows: RowSet, layout: RowLayout, spec: PassSpec, layers, n_stim: int, *, memory_bytes, progress, timings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The engine over the pass's rows (top-1 over all units): (selected, selected_r, null_max) as in PassResult;
    the engine's timings are added to `timings`."""
    n_sites = layout.n_sites
    config = EngineConfig(
        top_k=1,
        layer_top_k=1,
        featuremaps=False,
        memory_bytes=memory_bytes,
        reserve_bytes=DEFAULT_RESERVE_BYTES + projection_bytes(layers, spec, n_stim),
        seed=spec.seed,
        progress=progress,
    )
    log.info(
        "%s: statistics pass over %d extra rows (%d training sets, %d permutations) and %d projected layer(s)",
        tap.model,
        rows.n_rows,
        layout.n_sets,
        layout.n_permutations,
        len(spec.projection_layers),
    )
    result = match_units(tap, feed, rows, config)
    timings.update({f"match_{k}": v for k, v in result.timings.items()})
    timings["passes"] = float(len(result.plan.passes))
    best = result.top_index[:, 0]
    best_r = np.where(np.isfinite(result.top_r[:, 0]), result.top_r[:, 0], np.nan).astype(np.float64)
    layer_idx, flat = result.locate(np.where(best >= 0, best, 0))
    keys = np.full((rows.n_rows, 4), -1, np.int64)
    for lay in np.unique(layer_idx[best >= 0]):
        sel = (layer_idx == lay) & (best >= 0)
        c, y, x = unit_coords(layers[int(lay)], flat[sel])
        keys[sel] = np.stack([np.full(sel.sum(), lay), c, y, x], axis=1)
    n_train = layout.n_sets * n_sites
    selected = keys[:n_train].reshape(layout.n_sets, n_sites, 4)
    selected_r = best_r[:n_train].reshape(layout.n_sets, n_sites)
    null_max = best_r[n_train:].reshape(layout.n_permutations, n_sites)
    return selected, selected_r, null_max


def _gather_units(source, feed, layers, unit_keys: np.ndarray) -> np.ndarray:
    """(units, stimuli) float32 activations of `unit_keys` (units, 4) over every stimulus (inference only)."""
    flat_idx = np.array(
        [k[1] * layers[k[0]].height * layers[k[0]].width + k[2] * layers[k[0]].width + k[3] for k in unit_keys],
        np.int64,
    )
    unit_values, _ = gather_activations(source, feed, unit_keys[:, 0], flat_idx)
    return unit_values


# ---------------------------------------------------------------------------------------------- analyses' glue
def best_layers(ctx) -> dict[str, int]:
    """Each region's best layer (scores.best_layers), as `layer_scores` chooses its "V4-like" / "IT-like"."""
    return {region: layer for region, (layer, _) in region_best_layers(ctx.layer_matches(rank=1), ctx.sites()).items()}


def pass_spec(ctx) -> PassSpec:
    """The pass's rows for this context: the null's permutations and the PLS projections (each region's best
    layer; every layer with --protocol paper), and with --protocol paper the 10 training sets of the exact
    10-fold neuron_to_neuron (every fold but one; the held-out scores of the default protocol come from the
    matching run's own training sets, split_matches)."""
    paper = ctx.protocol == "paper"
    masks = {f"n2n{f}": m for f, m in enumerate(fold_out_masks(ctx.folds()))} if paper else {}
    if paper:
        layers = tuple(ctx.layers()["layer_idx"].astype(int).tolist())
    else:
        layers = tuple(sorted(set(best_layers(ctx).values())))
    return PassSpec(
        masks, PAPER_PERMUTATIONS if paper else DEFAULT_PERMUTATIONS, layers, DEFAULT_PROJECTION_DIM, ctx.seed
    )


def open_model_source(ctx):
    """The model's ActivationSource, or None for a model with nothing to run (not a control and no ONNX
    file: e.g. match tables written by a test). Tests replace this function to use a synthetic source."""

    row = ctx.model_row()
    if row.get("kind") != "control" and not row.get("onnx_path"):
        return None
    return ctx.activation_source()


def ensure_pass(ctx) -> PassResult | None:
    """The pass for this (dataset, model): from the step's cache, the data folder's cache, or computed now.

    None (logged) when the model has no activation source to run."""
    spec = pass_spec(ctx)
    return ctx.cached(("stats_pass", json.dumps(spec.summary(), sort_keys=True)), lambda: _load_or_run(ctx, spec))


def _load_or_run(ctx, spec: PassSpec) -> PassResult | None:
    path = cache_path(ctx, spec.summary())
    if path is not None and path.exists():
        try:
            result = PassResult.load(path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable cached statistics pass %s (%s)", path, exc)
        else:
            log.info("%s x %s: statistics pass from cache %s", ctx.dataset, ctx.model, path.name)
            return result

    inputs = ctx.dataset_inputs()
    if inputs.site_ids != ctx.sites()["site_id"].tolist() or inputs.stimulus_ids != ctx.stimulus_ids():
        raise RuntimeError("sites or stimuli are not in idx order")
    source = open_model_source(ctx)
    if source is None:
        log.warning(
            "%s has no activation source (no ONNX file): no statistics pass, so no null, PLS or exact "
            "10-fold n2n for it on %s",
            ctx.model,
            ctx.dataset,
        )
        return None
    try:
        result = run_pass(
            source,
            PngFeed(inputs.stimulus_ids, inputs.pngs),
            ctx.responses(),
            spec,
            progress=f"{ctx.model} statistics pass",
        )
    finally:
        source.close()
    if path is not None:
        result.save(path)
        prune_cache(path)
    return result
