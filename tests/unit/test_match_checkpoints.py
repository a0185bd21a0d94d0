"""Training-set checkpoints of the matching pass (precompute/match/checkpoints.py) against float64 brute force:
each row's best unit over every nested training set, from the same pass as the all-stimuli matches."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.match.checkpoints import Checkpoints
from precompute.match.engine import match_units
from precompute.match.plan import bytes_per_unit
from precompute.match.rows import RowSet
from precompute.match.schedule import schedule
from tests.support.sources import SyntheticSource, UnitEdits
from tests.unit.test_match_engine import SHAPES, all_activations, check_topk, make_feed, reference_r, small_config


def nested_masks(n: int, sets: int, seed: int) -> np.ndarray:
    """Nested random training sets: folds 0..t-1 of a random fold assignment, for t = 1..sets."""
    fold = np.random.default_rng(seed).permutation(n) % (sets + 1)
    return np.stack([fold < t for t in range(1, sets + 1)])


@pytest.fixture(scope="module")
def world():
    n = 211
    edits = UnitEdits(dead=(0, 1, 150), constant=(2, 40), copies=((100, 37), (200, 37)))
    source = SyntheticSource(SHAPES, seed=4, edits=edits)
    feed = make_feed(n, seed=3)
    acts = all_activations(source, feed)
    rng = np.random.default_rng(8)
    mix = rng.standard_normal((acts.shape[1], 8)) * (rng.random((acts.shape[1], 8)) < 0.03)
    rows = (acts @ mix + rng.standard_normal((n, 8)) * 2.0).T
    with_nan = rows[1].copy()
    with_nan[rng.choice(n, 25, replace=False)] = np.nan
    rows = np.concatenate([rows, with_nan[None], rng.standard_normal((1, n))], axis=0)
    return source, feed, acts, rows


@pytest.mark.parametrize("memory_units", [None, 70])
@pytest.mark.parametrize("k", [1, 4])
def test_every_training_set_matches_the_reference_over_its_stimuli(world, memory_units, k):
    source, feed, acts, rows = world
    masks = nested_masks(acts.shape[0], 4, seed=1)
    config = small_config(top_k=6)
    if memory_units is not None:  # several passes, layers split at channels
        config = small_config(
            top_k=6, memory_bytes=4 * 7 * acts.shape[1] + memory_units * bytes_per_unit(rows.shape[0], 2, 20)
        )
    result = match_units(source, feed, RowSet.from_matrix(rows), config, Checkpoints(masks, top_k=k))
    assert (len(result.plan.passes) > 1) == (memory_units is not None)
    assert result.set_r.shape == (4, rows.shape[0], k)
    for c, mask in enumerate(masks):
        ref = reference_r(np.where(mask[None, :], rows, np.nan), acts)
        for i in range(rows.shape[0]):
            check_topk(result.set_r[c, i], result.set_index[c, i], ref[i], k)
    # the all-stimuli results are those of a run without checkpoints (another stimulus order: round-off only)
    plain = match_units(source, feed, RowSet.from_matrix(rows), config)
    np.testing.assert_array_equal(result.top_index[:, :3], plain.top_index[:, :3])
    np.testing.assert_allclose(result.top_r, plain.top_r, atol=1e-5)


def test_checkpoint_ties_go_to_the_lower_unit(world):
    source, feed, acts, _ = world
    masks = nested_masks(acts.shape[0], 2, seed=2)
    rows = acts[:, [37]].T.copy()  # units 37, 100 and 200 are copies: they tie on every set
    result = match_units(source, feed, RowSet(rows), small_config(top_k=3), Checkpoints(masks, top_k=3))
    assert result.set_index[:, 0].tolist() == [[37, 100, 200], [37, 100, 200]]


def test_flagged_units_are_redone_exactly_over_their_training_set(world, monkeypatch):
    """Units whose variance over a training set lost too many digits to float32 cancellation are searched
    again in float64 from their gathered activations. A condition floor of 1 flags every unit, so every
    training-set answer below comes from that exact path."""
    import precompute.match.checkpoints as checkpoints

    source, feed, acts, rows = world
    monkeypatch.setattr(checkpoints, "CONDITION_FLOOR", 1.0)
    masks = nested_masks(acts.shape[0], 2, seed=6)
    result = match_units(source, feed, RowSet.from_matrix(rows[:4]), small_config(top_k=3), Checkpoints(masks, 3))
    assert result.timings["set_ill_conditioned"] > 0.5 * acts.shape[1]
    for c, mask in enumerate(masks):
        ref = reference_r(np.where(mask[None, :], rows[:4], np.nan), acts)
        for i in range(4):
            check_topk(result.set_r[c, i], result.set_index[c, i], ref[i], 3)


def test_masks_must_be_nested_and_weights_zero_one(world):
    source, feed, acts, rows = world
    masks = nested_masks(acts.shape[0], 2, seed=1)[::-1]
    with pytest.raises(ValueError, match="nested"):
        match_units(source, feed, RowSet(rows[:2]), small_config(), Checkpoints(masks))
    counts = np.full((1, acts.shape[0]), 2.0)
    with pytest.raises(ValueError, match="0/1"):
        match_units(source, feed, RowSet(rows[:2], None, counts), small_config(), Checkpoints(masks[::-1]))


def test_schedule_takes_each_training_set_before_the_rest():
    level = np.random.default_rng(0).integers(0, 4, 300)  # sets 0..2 and stimuli in none (level 3)
    order, windows, after = schedule(np.ones((1, 300)), 64, seed=0, level=level)
    assert sorted(order.tolist()) == list(range(300))
    assert (np.diff(level[order]) >= 0).all()
    sizes = [w.stop - w.start for w in windows]
    assert max(sizes) <= 64 and min(sizes) >= 32  # near-equal steps within a level
    done = {c: w for w, cs in after.items() for c in cs}
    for c in range(3):
        seen = order[: windows[done[c]].stop]
        assert set(seen.tolist()) == set(np.flatnonzero(level <= c).tolist())


def test_top1_tiles_keep_the_first_maximum_across_tiles(world, monkeypatch):
    """The top-1 search walks tiles of units; with tiny tiles the tied copies 37, 100 and 200 fall in
    different tiles, and every row's answer is still the reference's (ties: the lower unit)."""
    import precompute.match.checkpoints as checkpoints

    source, feed, acts, rows = world
    monkeypatch.setattr(checkpoints, "TILE_UNITS", 13)
    monkeypatch.setattr(checkpoints, "TILE_ROWS", 3)
    masks = nested_masks(acts.shape[0], 3, seed=9)
    values = np.concatenate([rows, acts[:, [37]].T], axis=0)
    result = match_units(source, feed, RowSet.from_matrix(values), small_config(top_k=2), Checkpoints(masks))
    for c, mask in enumerate(masks):
        ref = reference_r(np.where(mask[None, :], values, np.nan), acts)
        for i in range(values.shape[0]):
            check_topk(result.set_r[c, i], result.set_index[c, i], ref[i], 1)
        assert result.set_index[c, -1, 0] == 37
