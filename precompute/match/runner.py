"""One (dataset, model) pair: load the dataset from the working database, match, gather, write.

Everything for a pair happens in one `store.step(f"match:{dataset}:{model}")` transaction: an
interrupted run leaves the database (and the served file) as it was, and a rerun starts the pair again.
A pair with a `match_runs` row is skipped unless `force`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import numpy as np
from tqdm import tqdm

from precompute.core.catalog import require_model
from precompute.core.errors import UserError
from precompute.core.failpoints import failpoint
from precompute.core.feeds import PngFeed
from precompute.core.steps import match_step
from precompute.core.store import Store
from precompute.datasets.folds import TRAIN_FOLDS, ensure_folds, training_masks
from precompute.match.checkpoints import Checkpoints
from precompute.match.engine import DEFAULT_TOP_K, EngineConfig, match_units
from precompute.match.gather import (
    RANDOM_UNITS_SEED,
    insert_unit_activations,
    select_gather_units,
    unit_activations_table,
)
from precompute.match.inference import gather_activations
from precompute.match.inputs import load_inputs
from precompute.match.results import MatchResult, unit_coords
from precompute.match.rows import RowSet
from precompute.models.base import ActivationSource
from precompute.models.sources import open_source

log = logging.getLogger(__name__)

MATCH_TABLES = ("matches", "layer_matches", "featuremap_matches", "split_matches", "unit_activations", "match_runs")


#: (con, model, store) -> ActivationSource; the default opens stored models (precompute.models.sources).
SourceFactory = Callable[..., ActivationSource]


def is_done(store: Store, dataset: str, model: str) -> bool:
    """The pair is matched, with the training-set selections the held-out scores need (a pair matched before
    they were part of matching is matched again: `predates_heldout`)."""
    with store.connect() as con:
        matched = (
            con.execute("SELECT count(*) FROM match_runs WHERE dataset = ? AND model = ?", [dataset, model]).fetchone()[
                0
            ]
            > 0
        )
        if matched and predates_heldout(con, dataset, model):
            log.warning(
                "%s x %s was matched before held-out selection was part of matching (no split_matches): "
                "matching it again",
                dataset,
                model,
            )
            return False
        return matched


def predates_heldout(con, dataset: str, model: str) -> bool:
    """A match run of the pair exists but stored no training-set selections (split_matches)."""
    matched = (
        con.execute("SELECT count(*) FROM match_runs WHERE dataset = ? AND model = ?", [dataset, model]).fetchone()[0]
        > 0
    )
    if not matched:
        return False
    return (
        con.execute("SELECT count(*) FROM split_matches WHERE dataset = ? AND model = ?", [dataset, model]).fetchone()[
            0
        ]
        == 0
        and con.execute("SELECT count(*) FROM matches WHERE dataset = ? AND model = ?", [dataset, model]).fetchone()[0]
        > 0
    )


def served_predates_heldout(served_path, dataset: str, model: str) -> bool:
    """predates_heldout on the served file (False when it cannot be read or lacks the tables)."""
    try:
        con = duckdb.connect(str(served_path), read_only=True)
    except (duckdb.Error, OSError):
        return False
    try:
        return predates_heldout(con, dataset, model)
    except duckdb.Error:  # a file from before split_matches existed has matches but no such table
        try:
            return (
                con.execute(
                    "SELECT count(*) FROM match_runs WHERE dataset = ? AND model = ?", [dataset, model]
                ).fetchone()[0]
                > 0
            )
        except duckdb.Error:
            return False
    finally:
        con.close()


def default_source_factory(con, model: str, store: Store) -> ActivationSource:
    require_model(con, model)
    return open_source(con, model, store)


@dataclass
class PairOutcome:
    dataset: str
    model: str
    n_passes: int
    inference_s: float
    match_s: float
    gather_s: float
    n_gathered: int
    result: MatchResult | None = None


def run_pair(
    store: Store,
    dataset: str,
    model: str,
    *,
    top_k: int = DEFAULT_TOP_K,
    memory_gb: float | None = None,
    force: bool = False,
    progress: bool = True,
    source_factory: SourceFactory | None = None,
    config: EngineConfig | None = None,
    keep_result: bool = False,
) -> PairOutcome | None:
    """Match and gather one pair in one step; None when skipped (already done and not `force`)."""
    if top_k < 1:
        raise UserError("--top-k must be at least 1")
    if memory_gb is not None and memory_gb <= 0:
        raise UserError("--memory-gb must be positive")
    if not force and is_done(store, dataset, model):
        _log_skipped(store, dataset, model, top_k)
        return None
    factory = source_factory or default_source_factory
    base = config or EngineConfig()
    memory = int(memory_gb * (1 << 30)) if memory_gb is not None else base.memory_bytes
    config = EngineConfig(
        **{**base.__dict__, "top_k": top_k, "memory_bytes": memory, "progress": f"{model} match" if progress else None}
    )
    with store.step(match_step(dataset, model)) as con:
        inputs = load_inputs(con, dataset)
        folds = ensure_folds(con, dataset)
        t0 = time.perf_counter()
        source = factory(con, model, store)
        try:
            feed = PngFeed(inputs.stimulus_ids, inputs.pngs)
            result = match_units(
                source,
                feed,
                RowSet.from_matrix(inputs.responses),
                config,
                Checkpoints(training_masks(folds, TRAIN_FOLDS)),
            )
            match_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            units, values = _gather(source, feed, result, model, progress)
        finally:
            source.close()
        for table in MATCH_TABLES:
            con.execute(f'DELETE FROM "{table}" WHERE dataset = ? AND model = ?', [dataset, model])
        write_match_tables(con, dataset, model, inputs.site_ids, result)
        failpoint("match.tables_written")
        insert_unit_activations(con, unit_activations_table(dataset, model, result.layers, units, values))
        gather_s = time.perf_counter() - t1
        outcome = PairOutcome(
            dataset,
            model,
            len(result.plan.passes),
            result.timings["inference_s"],
            match_s,
            gather_s,
            len(units),
            result if keep_result else None,
        )
        _record_run(store, con, outcome, top_k, len(inputs.stimulus_ids))
    _log_done(outcome, result)
    return outcome


def _log_skipped(store: Store, dataset: str, model: str, top_k: int) -> None:
    with store.connect() as con:
        row = con.execute("SELECT top_k FROM match_runs WHERE dataset = ? AND model = ?", [dataset, model]).fetchone()
    if row and row[0] is not None and int(row[0]) != top_k:
        log.warning(
            "%s x %s is already matched with top-k %d (this run asks for %d); skipping (use --force to "
            "redo it with %d)",
            dataset,
            model,
            int(row[0]),
            top_k,
            top_k,
        )
    else:
        log.info("%s x %s is already matched; skipping (use --force to redo it)", dataset, model)


def _gather(source: ActivationSource, feed: PngFeed, result: MatchResult, model: str, progress: bool):
    """(units chosen, their activations over every stimulus): the gather pass of a matched pair."""
    units = select_gather_units(result)
    bar = _bar(f"{model} gather", len(feed.stimulus_ids)) if progress else None
    values, _ = gather_activations(
        source,
        feed,
        units.layer_idx,
        units.flat,
        batch_size=result.plan.batch_size,
        progress=bar.update if bar else None,
    )
    if bar:
        bar.close()
    return units, values


def _record_run(store: Store, con, outcome: PairOutcome, top_k: int, n_stimuli: int) -> None:
    """The random units' seed and the `match_runs` row (the caller's step transaction)."""
    store.record(con, "seeds", f"{match_step(outcome.dataset, outcome.model)}:random_units", RANDOM_UNITS_SEED)
    con.execute(
        "INSERT INTO match_runs (dataset, model, top_k, n_stimuli, n_passes, inference_s, match_s, gather_s, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            outcome.dataset,
            outcome.model,
            top_k,
            n_stimuli,
            outcome.n_passes,
            outcome.inference_s,
            outcome.match_s,
            outcome.gather_s,
            datetime.now(UTC).replace(tzinfo=None),
        ],
    )


def _log_done(outcome: PairOutcome, result: MatchResult) -> None:
    log.info(
        "%s x %s: matched in %.1f s (%d pass(es), inference %.1f s, product %.1f s, %d training sets searched "
        "in %.1f s), gathered %d units in %.1f s",
        outcome.dataset,
        outcome.model,
        outcome.match_s,
        outcome.n_passes,
        outcome.inference_s,
        result.timings["product_s"],
        len(TRAIN_FOLDS),
        result.timings.get("checkpoint_s", 0.0),
        outcome.n_gathered,
        outcome.gather_s,
    )


def _bar(desc: str, total: int):
    return tqdm(total=total, desc=desc, unit="stim", file=sys.stderr, dynamic_ncols=True)


def write_match_tables(con, dataset: str, model: str, site_ids: list[str], result: MatchResult) -> None:
    """matches, layer_matches, featuremap_matches and split_matches from an engine result (the caller's
    transaction)."""
    sites = np.asarray(site_ids, dtype=object)
    _write_matches(con, dataset, model, sites, result)
    _insert_parts(con, "layer_matches", dataset, model, sites, _layer_parts(result), with_rank=True)
    _insert_parts(con, "featuremap_matches", dataset, model, sites, _featuremap_parts(result), with_rank=False)
    _write_split_matches(con, dataset, model, sites, result)


def _insert(con, table: str, columns: dict) -> None:
    """Insert the columns (name -> values) into `table`."""
    import pyarrow as pa  # heavy: loaded when the tables are written

    tbl = pa.table(columns)
    con.register("match_rows_new", tbl)
    try:
        names = ", ".join(f'"{c}"' for c in columns)
        con.execute(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM match_rows_new')
    finally:
        con.unregister("match_rows_new")


def _coords(layers, layer_idx: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(channel, y, x) int32 of units given by (layer_idx, flat)."""
    channel = np.empty(len(flat), np.int32)
    y = np.empty(len(flat), np.int32)
    x = np.empty(len(flat), np.int32)
    for lay in np.unique(layer_idx):
        sel = layer_idx == lay
        channel[sel], y[sel], x[sel] = unit_coords(layers[int(lay)], flat[sel])
    return channel, y, x


def _write_matches(con, dataset: str, model: str, sites: np.ndarray, result: MatchResult) -> None:
    """matches: top-K over the whole model, rank 1 = best."""
    row, rank = np.nonzero(result.top_index >= 0)
    layer_idx, flat = result.locate(result.top_index[row, rank])
    c, y, x = _coords(result.layers, layer_idx, flat)
    _insert(
        con,
        "matches",
        {
            "dataset": [dataset] * len(row),
            "model": [model] * len(row),
            "site_id": sites[row].tolist(),
            "rank": (rank + 1).astype(np.int32),
            "layer_idx": layer_idx.astype(np.int32),
            "channel": c,
            "y": y,
            "x": x,
            "r": result.top_r[row, rank].astype(np.float32),
        },
    )


def _layer_parts(result: MatchResult) -> list[tuple]:
    """layer_matches: top-K within every layer (sorted by site, layer, rank by _insert_parts)."""
    parts = []
    for layer in result.layers:
        r_l, flat_l = result.layer_top[layer.layer_idx]
        row, rank = np.nonzero(flat_l >= 0)
        c, y, x = unit_coords(layer, flat_l[row, rank])
        parts.append((row, np.full(len(row), layer.layer_idx), rank, c, y, x, r_l[row, rank]))
    return parts


def _featuremap_parts(result: MatchResult) -> list[tuple]:
    """featuremap_matches: the best unit of every channel of every layer."""
    parts = []
    for layer in result.layers:
        if layer.layer_idx not in result.featuremap:
            continue
        fm_r, fm_flat = result.featuremap[layer.layer_idx]
        row, ch = np.nonzero(fm_flat >= 0)
        c, y, x = unit_coords(layer, fm_flat[row, ch])
        parts.append((row, np.full(len(row), layer.layer_idx), None, c, y, x, fm_r[row, ch]))
    return parts


def _write_split_matches(con, dataset: str, model: str, sites: np.ndarray, result: MatchResult) -> None:
    """split_matches: the best units on each training set (folds 0 .. t-1)."""
    if result.set_index is None:
        return
    for c, t in enumerate(TRAIN_FOLDS[: result.set_index.shape[0]]):
        row, rank = np.nonzero(result.set_index[c] >= 0)
        layer_idx, flat = result.locate(result.set_index[c][row, rank])
        ch, y, x = _coords(result.layers, layer_idx, flat)
        _insert(
            con,
            "split_matches",
            {
                "dataset": [dataset] * len(row),
                "model": [model] * len(row),
                "site_id": sites[row].tolist(),
                "train_folds": np.full(len(row), t, np.int32),
                "rank": (rank + 1).astype(np.int32),
                "layer_idx": layer_idx.astype(np.int32),
                "channel": ch,
                "y": y,
                "x": x,
                "r": result.set_r[c][row, rank].astype(np.float32),
            },
        )


def _insert_parts(con, table, dataset, model, sites, parts, *, with_rank: bool) -> None:
    if not parts:
        return
    row = np.concatenate([p[0] for p in parts])
    layer_idx = np.concatenate([p[1] for p in parts]).astype(np.int32)
    channel = np.concatenate([p[3] for p in parts]).astype(np.int32)
    order = np.lexsort((np.concatenate([p[2] for p in parts]) if with_rank else channel, layer_idx, row))
    cols = {
        "dataset": [dataset] * len(row),
        "model": [model] * len(row),
        "site_id": sites[row[order]].tolist(),
        "layer_idx": layer_idx[order],
    }
    if with_rank:
        cols["rank"] = (np.concatenate([p[2] for p in parts])[order] + 1).astype(np.int32)
    cols.update(
        {
            "channel": channel[order],
            "y": np.concatenate([p[4] for p in parts]).astype(np.int32)[order],
            "x": np.concatenate([p[5] for p in parts]).astype(np.int32)[order],
            "r": np.concatenate([p[6] for p in parts]).astype(np.float32)[order],
        }
    )
    _insert(con, table, cols)
