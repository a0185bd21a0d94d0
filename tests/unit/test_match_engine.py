"""The streaming matching engine against a float64 brute-force reference on data the tests make."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.core.feeds import ArrayFeed
from precompute.match.engine import EngineConfig, match_units
from precompute.match.plan import bytes_per_unit
from precompute.match.results import unit_coords
from precompute.match.rows import RowSet
from precompute.models.base import LayerInfo
from tests.support.sources import SyntheticSource, UnitEdits

SHAPES = [(4, 6, 6), (8,), (6, 3, 3), (5, 1, 1), (3, 4, 4)]  # 259 units; 2-D and 4-D outputs
TOL = 1e-4


def make_feed(n: int, seed: int = 1, side: int = 16) -> ArrayFeed:
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (side, side), dtype=np.uint8) for _ in range(n)]
    return ArrayFeed([f"stim-{i:04d}" for i in range(n)], images)


def all_activations(source, feed) -> np.ndarray:
    """(stimuli, units) float64: every unit of every layer, flat index order."""
    outs = source.activations(feed.images, feed.stimulus_ids)
    return np.concatenate([o.reshape(len(feed.images), -1) for o in outs], axis=1).astype(np.float64)


def reference_r(rows: np.ndarray, acts: np.ndarray) -> np.ndarray:
    """Brute force, float64: r (rows, units), -inf for zero-variance units; NaN entries left out."""
    out = np.full((rows.shape[0], acts.shape[1]), -np.inf)
    for i, y in enumerate(rows):
        keep = np.isfinite(y)
        a = acts[keep]
        yc = y[keep] - y[keep].mean()
        ac = a - a.mean(axis=0)
        sd = np.sqrt((ac**2).sum(axis=0))
        ok = np.ptp(a, axis=0) > 0
        if np.sqrt((yc**2).sum()) == 0:
            continue
        out[i, ok] = (yc @ ac[:, ok]) / (np.sqrt((yc**2).sum()) * sd[ok])
    return out


def reference_topk(r: np.ndarray, k: int) -> np.ndarray:
    idx = np.arange(r.shape[1])
    return np.stack([np.lexsort((idx, -row))[:k] for row in r])


def check_topk(got_r, got_i, ref_r_row, k):
    """DESIGN.md's exactness: reported r within TOL of the reference; the set equals the reference's
    except where two units' r differ by less than TOL."""
    finite = np.isfinite(ref_r_row)
    n_expected = min(k, int(finite.sum()))
    got_i = got_i[got_i >= 0]
    assert len(got_i) == n_expected
    np.testing.assert_allclose(got_r[: len(got_i)], ref_r_row[got_i], atol=TOL)
    ref_sorted = np.sort(ref_r_row[finite])[::-1][:n_expected]
    np.testing.assert_allclose(got_r[: len(got_i)], ref_sorted, atol=TOL)  # the ranks' values
    if n_expected:
        kth = ref_sorted[-1]
        must = np.flatnonzero(ref_r_row > kth + TOL)
        assert set(must) <= set(got_i.tolist())


@pytest.fixture(scope="module")
def world():
    n = 203  # divisible by neither the batch (7) nor the stage (<= 50)
    edits = UnitEdits(dead=(0, 1, 150, 160), constant=(2, 40, 161), copies=((100, 37), (200, 37)))
    source = SyntheticSource(SHAPES, seed=3, edits=edits)
    feed = make_feed(n)
    acts = all_activations(source, feed)
    rng = np.random.default_rng(5)
    # Sites: noisy mixtures of units, plus pure noise, a constant row and a row with missing values.
    mix = rng.standard_normal((acts.shape[1], 10)) * (rng.random((acts.shape[1], 10)) < 0.02)
    rows = acts @ mix + rng.standard_normal((n, 10)) * 2.0
    rows = np.concatenate([rows.T, rng.standard_normal((1, n)), np.full((1, n), 4.0)], axis=0)
    with_nan = rows[0].copy()
    with_nan[rng.choice(n, 20, replace=False)] = np.nan
    rows = np.concatenate([rows, with_nan[None]], axis=0)
    return source, feed, acts, rows


def small_config(**kw) -> EngineConfig:
    base = dict(
        top_k=20,
        layer_top_k=5,
        batch_size=7,
        max_stage=50,
        min_stage=20,
        reserve_bytes=0,
        memory_bytes=1 << 30,
        device="cpu",
        threads=1,
    )
    base.update(kw)
    return EngineConfig(**base)


@pytest.mark.parametrize("memory_units", [None, 60])
def test_matches_brute_force_reference(world, memory_units):
    source, feed, acts, rows = world
    n_rows = rows.shape[0]
    if memory_units is None:
        config = small_config()
    else:  # room for ~60 units per pass: forces several passes and splits layers at channels
        groups = 2  # the NaN row makes a second group
        config = small_config(memory_bytes=4 * 7 * acts.shape[1] + memory_units * bytes_per_unit(n_rows, groups, 20))
    result = match_units(source, feed, RowSet.from_matrix(rows), config)
    if memory_units is not None:
        assert len(result.plan.passes) >= 4
    else:
        assert len(result.plan.passes) == 1
    ref = reference_r(rows, acts)
    for i in range(n_rows):
        check_topk(result.top_r[i], result.top_index[i], ref[i], 20)
    # The constant row has no matches; dead and constant units are never matched.
    assert (result.top_index[-2] == -1).all() and not result.row_valid[-2]
    matched = set(result.top_index[result.top_index >= 0].tolist())
    assert not matched & {0, 1, 2, 40, 150, 160, 161}
    # Within-layer top-k and best per feature map.
    for layer in result.layers:
        lo, hi = result.offsets[layer.layer_idx], result.offsets[layer.layer_idx + 1]
        r_l, flat_l = result.layer_top[layer.layer_idx]
        fm_r, fm_flat = result.featuremap[layer.layer_idx]
        for i in range(n_rows):
            check_topk(r_l[i], flat_l[i], ref[i, lo:hi], 5)
            per_channel = ref[i, lo:hi].reshape(layer.channels, -1)
            for c in range(layer.channels):
                if not np.isfinite(per_channel[c]).any() or not np.isfinite(ref[i]).any():
                    assert fm_flat[i, c] == -1
                    continue
                assert abs(fm_r[i, c] - per_channel[c].max()) < TOL
                assert abs(ref[i, lo + fm_flat[i, c]] - per_channel[c].max()) < TOL
                assert fm_flat[i, c] // (per_channel.shape[1]) == c


def test_passes_do_not_change_results(world):
    source, feed, acts, rows = world
    one = match_units(source, feed, RowSet.from_matrix(rows), small_config())
    many = match_units(
        source,
        feed,
        RowSet.from_matrix(rows),  # and two threads staging the batches
        small_config(memory_bytes=4 * 7 * acts.shape[1] + 50 * bytes_per_unit(rows.shape[0], 2, 20), threads=2),
    )
    assert len(many.plan.passes) > 1
    np.testing.assert_array_equal(one.top_index, many.top_index)
    np.testing.assert_allclose(one.top_r, many.top_r, atol=1e-6)


def test_ties_go_to_the_lower_layer_then_lower_flat_index(world):
    source, feed, acts, _ = world
    # Unit 37 (layer 0) has exact copies at 100 (layer 0) and 200 (layer 2): a row equal to it ties all three.
    rows = acts[:, [37]].T.copy()
    result = match_units(source, feed, RowSet(rows), small_config(top_k=3))
    assert result.top_index[0].tolist() == [37, 100, 200]
    np.testing.assert_allclose(result.top_r[0], 1.0, atol=1e-5)
    layer, flat = result.locate(result.top_index[0])
    assert layer.tolist() == [0, 0, 2] and flat.tolist() == [37, 100, 200 - result.offsets[2]]


def test_planted_units_are_found_exactly():
    """Sites built as noisy copies of known units are matched to exactly those units."""
    source = SyntheticSource([(8, 5, 5), (16, 3, 3), (32,)], seed=11)
    feed = make_feed(300, seed=2)
    acts = all_activations(source, feed)
    rng = np.random.default_rng(0)
    live = np.flatnonzero(acts.std(axis=0) > 0.5)
    planted = rng.choice(live, 24, replace=False)
    sd = acts[:, planted].std(axis=0)
    rows = (acts[:, planted] + 0.05 * sd * rng.standard_normal((300, 24))).T
    result = match_units(source, feed, RowSet(rows), small_config(top_k=3, memory_bytes=1 << 28))
    ref = reference_r(rows, acts)
    best_ref = np.array([np.lexsort((np.arange(acts.shape[1]), -r))[0] for r in ref])
    np.testing.assert_array_equal(best_ref, planted)  # the plant is strong enough to be unique
    np.testing.assert_array_equal(result.top_index[:, 0], planted)
    layer, flat = result.locate(planted)
    for lay, f, i in zip(layer, flat, range(24), strict=True):
        channel, _y, _x = unit_coords(result.layers[lay], f)
        _r_l, flat_l = result.layer_top[int(lay)]
        assert flat_l[i, 0] == f
        _fm_r, fm_flat = result.featuremap[int(lay)]
        assert fm_flat[i, channel] == f


def test_weighted_rows_match_the_reference_on_their_subset(world):
    source, feed, acts, rows = world
    rng = np.random.default_rng(9)
    masks = (rng.random((3, acts.shape[0])) < 0.6).astype(float)
    group = np.array([0, 1, 2, 1])
    values = rows[:4]
    result = match_units(source, feed, RowSet(values, group, masks), small_config(top_k=10))
    for i in range(4):
        subset = np.where(masks[group[i]] > 0, values[i], np.nan)
        ref = reference_r(subset[None, :], acts)[0]
        check_topk(result.top_r[i], result.top_index[i], ref, 10)


def test_top1_fast_path_matches_the_reference_and_breaks_ties_by_index(world):
    """top_k = layer_top_k = 1 (the statistics' extra rows) takes the max path: same answers, same ties."""
    source, feed, acts, rows = world
    rng = np.random.default_rng(12)
    masks = (rng.random((2, acts.shape[0])) < 0.7).astype(float)
    masks[1] = 1.0
    tie_row = acts[:, 37]  # ties units 37, 100 and 200 on every subset
    values = np.stack([rows[0], tie_row, rows[3], tie_row, rows[5]])
    group = np.array([0, 0, 1, 1, 0])  # interleaved groups: runs of rows per group
    config = small_config(top_k=1, layer_top_k=1, featuremaps=False)
    result = match_units(source, feed, RowSet(values, group, masks), config)
    for i in range(len(values)):
        subset = np.where(masks[group[i]] > 0, values[i], np.nan)
        ref = reference_r(subset[None, :], acts)[0]
        best = int(np.lexsort((np.arange(ref.size), -ref))[0])
        if i in (1, 3):
            assert result.top_index[i, 0] == 37
        else:
            assert abs(ref[result.top_index[i, 0]] - ref[best]) < TOL
        assert abs(result.top_r[i, 0] - ref[best]) < TOL
        for layer in result.layers:
            lo, hi = result.offsets[layer.layer_idx], result.offsets[layer.layer_idx + 1]
            r_l, flat_l = result.layer_top[layer.layer_idx]
            assert abs(r_l[i, 0] - ref[lo:hi].max()) < TOL
            assert abs(ref[lo + flat_l[i, 0]] - ref[lo:hi].max()) < TOL


def test_integer_weights_equal_a_resample(world):
    """Counts as weights (a bootstrap) give the Pearson r of the resampled data."""
    source, feed, acts, rows = world
    rng = np.random.default_rng(4)
    pick = rng.integers(0, acts.shape[0], acts.shape[0])
    counts = np.bincount(pick, minlength=acts.shape[0]).astype(float)
    result = match_units(source, feed, RowSet(rows[:2], None, counts[None, :]), small_config(top_k=10))
    ref = reference_r(rows[:2, pick], acts[pick])
    for i in range(2):
        check_topk(result.top_r[i], result.top_index[i], ref[i], 10)


def test_split_rows_multiply_only_their_stimuli_and_unweighted_stimuli_are_skipped(world):
    """Rows restricted to complementary halves (a split-half) are scheduled by weight pattern: every
    answer is the reference's, and stimuli that no row weighs are never run through the model."""
    source, feed, acts, rows = world
    n = acts.shape[0]
    rng = np.random.default_rng(21)
    used = rng.random(n) < 0.8
    half = rng.random(n) < 0.5
    masks = np.stack([used & half, used & ~half]).astype(float)
    values = np.concatenate([rows[:3], rows[:3]])
    group = np.array([0, 1, 0, 1, 0, 1])  # interleaved: the engine sorts rows by group and back

    class Counting:
        def __init__(self, inner):
            self.inner, self.layers, self.model, self.seen = inner, inner.layers, inner.model, 0

        def activations(self, images, ids, layer_indices=None):
            self.seen += len(images)
            return self.inner.activations(images, ids, layer_indices=layer_indices)

    counting = Counting(source)
    result = match_units(counting, feed, RowSet(values, group, masks), small_config(top_k=10))
    assert counting.seen == int(used.sum())
    for i in range(len(values)):
        subset = np.where(masks[group[i]] > 0, values[i], np.nan)
        ref = reference_r(subset[None, :], acts)[0]
        check_topk(result.top_r[i], result.top_index[i], ref, 10)
    assert result.group.tolist() == group.tolist()


class _TableSource:
    """An ActivationSource over a fixed (stimuli, units) table: one layer of units x 1 x 1."""

    def __init__(self, table: np.ndarray):
        self.table = table.astype(np.float32)
        self.model = "table"
        self.layers = [LayerInfo(0, "units", table.shape[1], 1, 1)]

    def activations(self, images, stimulus_ids, layer_indices=None):
        idx = [int(s.split("-")[1]) for s in stimulus_ids]
        return [self.table[idx][:, :, None, None]]


def test_units_too_ill_conditioned_for_float32_are_matched_exactly():
    """A unit nearly constant on a row's stimuli, far from the shift (set on other stimuli), loses its
    variance to float32 cancellation; the engine redoes such units in float64 instead of reporting noise."""
    from precompute.match.schedule import schedule

    rng = np.random.default_rng(0)
    n = 200
    in_b = np.arange(n) >= 100
    t = rng.standard_normal(n)
    table = rng.standard_normal((n, 4))
    table[:, 1] = np.where(in_b, 1e-3 * t, 5.0 + 0.5 * rng.standard_normal(n))  # tiny spread on B, far from 5
    rows = np.stack([rng.standard_normal(n), np.where(in_b, t + 0.05 * rng.standard_normal(n), np.nan)])
    weights = np.stack([np.ones(n), in_b.astype(float)])
    group = np.array([0, 1])
    seed = next(s for s in range(100) if not in_b[schedule(weights, 50, s)[0][0]])  # first batch outside B
    feed = ArrayFeed([f"stim-{i:04d}" for i in range(n)], [np.zeros((4, 4), np.uint8)] * n)
    source = _TableSource(table)
    result = match_units(
        source, feed, RowSet(np.nan_to_num(rows), group, weights), small_config(top_k=2, layer_top_k=2, seed=seed)
    )
    assert result.timings["ill_conditioned"] >= 1
    ref = reference_r(np.where(weights[group] > 0, np.nan_to_num(rows), np.nan), table.astype(np.float64))
    for i in range(2):
        check_topk(result.top_r[i], result.top_index[i], ref[i], 2)
    assert result.top_index[1, 0] == 1 and result.top_r[1, 0] > 0.99
    fm_r, fm_flat = result.featuremap[0]
    assert fm_flat[1, 1] == 1 and abs(fm_r[1, 1] - ref[1, 1]) < TOL
