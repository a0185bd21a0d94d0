"""The gather pass: activations over all stimuli of chosen units, stored in `unit_activations`.

After matching, one more inference pass stores every unit in any site's top-K (deduplicated, reason
'topk'), every unit a site chose on one of the matching run's training sets (reason 'heldout': the held-out
scores score them on the other folds) and RANDOM_UNITS_PER_SITE seeded random units per site drawn from the
layer of its best unit (reason 'random', the decoding baseline), so the scatter plots, bootstraps,
one-to-one assignment and decoding never re-run a model. `gather_more` lets an analysis add units later
(reason 'requested').
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from precompute.core.errors import UserError
from precompute.core.failpoints import failpoint
from precompute.core.feeds import PngFeed
from precompute.match.inference import gather_activations
from precompute.match.inputs import load_inputs
from precompute.match.results import MatchResult, unit_coords
from precompute.models.base import ActivationSource, LayerInfo
from precompute.models.sources import open_source

log = logging.getLogger(__name__)

RANDOM_UNITS_PER_SITE = 10
#: Seed of the random units' generator (one stream over the rows in order); recorded in build_info.
RANDOM_UNITS_SEED = 0
REASON_PRIORITY = {"topk": 0, "heldout": 1, "random": 2, "requested": 3}


@dataclass(frozen=True)
class GatherUnits:
    """Units to gather, sorted by (layer_idx, flat), each with why it is gathered."""

    layer_idx: np.ndarray
    flat: np.ndarray
    reason: list[str]

    def __len__(self) -> int:
        return len(self.flat)


def select_gather_units(
    result: MatchResult,
    *,
    n_random: int = RANDOM_UNITS_PER_SITE,
    seed: int = RANDOM_UNITS_SEED,
    rows: np.ndarray | None = None,
) -> GatherUnits:
    """Every unit in any row's top-K, every unit a row chose on a training set (`result.set_index`), and
    n_random units per row (with non-zero variance) from the layer of the row's best unit; a unit chosen
    for several reasons is kept once, under the first of 'topk', 'heldout', 'random'."""
    rows = np.arange(result.top_index.shape[0]) if rows is None else np.asarray(rows)
    chosen: dict[int, str] = {}
    top = result.top_index[rows]
    for index in np.unique(top[top >= 0]):
        chosen[int(index)] = "topk"
    if result.set_index is not None:
        held = result.set_index[:, rows]
        for index in np.unique(held[held >= 0]):
            chosen.setdefault(int(index), "heldout")
    rng = np.random.default_rng(seed)
    for i in rows:
        best = result.top_index[i, 0]
        if best < 0:
            continue
        layer, _ = result.locate(np.array([best]))
        layer = int(layer[0])
        candidates = np.flatnonzero(result.valid[layer][result.group[i]])
        picks = rng.choice(candidates, size=min(n_random, candidates.size), replace=False)
        for flat in picks:
            chosen.setdefault(int(result.offsets[layer] + flat), "random")
    index = np.array(sorted(chosen), dtype=np.int64)
    layer, flat = result.locate(index) if index.size else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    return GatherUnits(layer.astype(np.int64), flat.astype(np.int64), [chosen[int(i)] for i in index])


def unit_activations_table(dataset: str, model: str, layers: list[LayerInfo], units: GatherUnits, values: np.ndarray):
    """The `unit_activations` rows as a pyarrow Table (values as a list column)."""
    import pyarrow as pa  # heavy: loaded when the table is written

    n, n_stim = values.shape
    channel = np.empty(n, np.int32)
    y = np.empty(n, np.int32)
    x = np.empty(n, np.int32)
    for lay in np.unique(units.layer_idx):
        sel = units.layer_idx == lay
        c, yy, xx = unit_coords(layers[int(lay)], units.flat[sel])
        channel[sel], y[sel], x[sel] = c, yy, xx
    offsets = pa.array(np.arange(0, n * n_stim + 1, n_stim, dtype=np.int64))
    lists = pa.LargeListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(values).reshape(-1)))
    return pa.table(
        {
            "dataset": pa.array([dataset] * n, pa.string()),
            "model": pa.array([model] * n, pa.string()),
            "layer_idx": pa.array(units.layer_idx.astype(np.int32)),
            "channel": pa.array(channel),
            "y": pa.array(y),
            "x": pa.array(x),
            "reason": pa.array(units.reason, pa.string()),
            "values": lists,
        }
    )


def insert_unit_activations(con, table) -> None:
    """Insert rows from unit_activations_table (the caller's transaction)."""
    con.register("unit_activations_new", table)
    try:
        con.execute(
            'INSERT INTO unit_activations (dataset, model, layer_idx, channel, y, x, reason, "values") '
            'SELECT dataset, model, layer_idx, channel, y, x, reason, "values"::FLOAT[] FROM unit_activations_new'
        )
    finally:
        con.unregister("unit_activations_new")
    failpoint("gather.rows_written")


def gather_more(
    con,
    dataset: str,
    model: str,
    units: list[tuple[int, int, int, int]],
    where,
    *,
    reason: str = "requested",
    source: ActivationSource | None = None,
    batch_size: int = 16,
) -> int:
    """Add activations of more units (layer_idx, channel, y, x) for an analysis; returns how many were
    added (units already stored are skipped). Runs inside the caller's step transaction `con`;
    `where` is what precompute.models.sources.open_source needs to find the model (the Store)."""
    if reason not in REASON_PRIORITY:
        raise ValueError(f"reason must be one of {sorted(REASON_PRIORITY)}")
    have = {
        tuple(r)
        for r in con.execute(
            "SELECT layer_idx, channel, y, x FROM unit_activations WHERE dataset = ? AND model = ?", [dataset, model]
        ).fetchall()
    }
    todo = sorted({tuple(int(v) for v in u) for u in units} - have)
    if not todo:
        return 0
    own = source is None
    if own:
        source = open_source(con, model, where)
    try:
        layers = source.layers
        flat = []
        for lay, c, y, x in todo:
            if not 0 <= lay < len(layers):
                raise UserError(f"layer_idx {lay} does not exist in {model} (0..{len(layers) - 1})")
            info = layers[lay]
            if not (0 <= c < info.channels and 0 <= y < info.height and 0 <= x < info.width):
                raise UserError(
                    f"unit ({lay}, {c}, {y}, {x}) is outside layer {lay} of {model} "
                    f"({info.channels} x {info.height} x {info.width})"
                )
            flat.append(c * info.height * info.width + y * info.width + x)
        chosen = GatherUnits(np.array([u[0] for u in todo], np.int64), np.array(flat, np.int64), [reason] * len(todo))
        inputs = load_inputs(con, dataset)
        values, _ = gather_activations(
            source, PngFeed(inputs.stimulus_ids, inputs.pngs), chosen.layer_idx, chosen.flat, batch_size=batch_size
        )
        insert_unit_activations(con, unit_activations_table(dataset, model, layers, chosen, values))
        log.info("gathered %d more units of %s on %s", len(todo), model, dataset)
        return len(todo)
    finally:
        if own:
            source.close()
