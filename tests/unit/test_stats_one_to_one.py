"""One-to-one (Hungarian) assignment against exhaustive search, shared best units, ranks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from precompute.statistics.one_to_one import one_to_one_assignment, rank_within_rows, shared_best_count


def _brute_best_total(r):
    """Highest total r over all injective site -> unit maps (sites <= units), NaN pairs forbidden."""
    best = -np.inf
    for cols in itertools.permutations(range(r.shape[1]), r.shape[0]):
        vals = r[np.arange(r.shape[0]), cols]
        if np.isfinite(vals).all():
            best = max(best, vals.sum())
    return best


@pytest.mark.parametrize("seed", range(6))
def test_assignment_maximises_total_r_like_exhaustive_search(seed):
    rng = np.random.default_rng(seed)
    r = rng.uniform(-1, 1, size=(4, 6))
    if seed % 2:
        r[rng.integers(0, 4), rng.integers(0, 6)] = np.nan
    assigned = one_to_one_assignment(r)
    assert (assigned >= 0).all() and len(set(assigned)) == 4  # each unit used at most once
    assert r[np.arange(4), assigned].sum() == pytest.approx(_brute_best_total(r))


def test_planted_copies_get_their_unit_and_a_shared_best_unit_is_resolved():
    rng = np.random.default_rng(0)
    units = rng.normal(size=(8, 200))
    sites = np.stack(
        [
            units[3] * 2 + 1,  # copy of unit 3
            units[3] + 0.05 * rng.normal(size=200),  # also best-matched by unit 3
            units[6],  # copy of unit 6
            rng.normal(size=200),
        ]
    )  # pure noise
    r = np.corrcoef(np.vstack([sites, units]))[:4, 4:]
    best = [int(np.argmax(row)) for row in r]
    assert best[0] == best[1] == 3 and shared_best_count(best) == 2
    assigned = one_to_one_assignment(r)
    assert len(set(assigned)) == 4 and assigned[2] == 6
    assert 3 in assigned[:2]  # one of the two copies keeps unit 3, the other moves
    assert max(r[0, assigned[0]], r[1, assigned[1]]) > 0.99
    assert abs(r[3, assigned[3]]) < 0.3  # the noise site's one-to-one r is unremarkable
    ranks = rank_within_rows(r, assigned)
    assert ranks[2] == 1 and sorted(ranks[:2])[0] == 1 and sorted(ranks[:2])[1] > 1


def test_more_sites_than_units_leaves_sites_unassigned():
    r = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    assigned = one_to_one_assignment(r)
    assert sorted(a for a in assigned if a >= 0) == [0, 1] and (assigned == -1).sum() == 1
    assert np.isnan(rank_within_rows(r, assigned)[assigned == -1]).all()


def test_a_site_with_only_nan_pairs_gets_no_unit():
    r = np.array([[0.5, np.nan], [np.nan, np.nan]])
    assert one_to_one_assignment(r).tolist() == [0, -1]


def test_shared_best_count_counts_every_site_in_a_shared_group():
    assert shared_best_count([(0, 1, 0, 0), (0, 1, 0, 0), (2, 0, 0, 0), None, (0, 1, 0, 0), (3, 0, 0, 0)]) == 3
    assert shared_best_count([(1, 0, 0, 0), (2, 0, 0, 0)]) == 0
