"""The order in which the engine processes the stimuli, and its product steps (Windows).

Stimuli are taken in a seeded random order: the first batch sets each unit's shift, so it must be a fair
sample (datasets are often sorted by category). When the groups' weights take few patterns over the stimuli
(the statistics' training sets), stimuli are scheduled pattern by pattern, so a product step multiplies only
the rows of the groups that weigh its stimuli; with training-set checkpoints, set by set
(precompute/match/checkpoints.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

#: Most distinct weight patterns over the stimuli for which the schedule groups stimuli by pattern
#: (beyond it, e.g. bootstrap counts, every step multiplies every row).
MAX_WEIGHT_PATTERNS = 32


@dataclass(frozen=True)
class Window:
    """Stimuli order[start:stop] make one product step. `groups`: the only groups with weight on them
    (None: all), each with the same weight `weights[g]` on every stimulus of the window."""

    start: int
    stop: int
    groups: np.ndarray | None = None
    weights: np.ndarray | None = None


class Schedule(NamedTuple):
    """order: stimulus indices in processing order; windows: its product steps; after: step index -> the
    training sets complete after that step."""

    order: np.ndarray
    windows: list[Window]
    after: dict[int, list[int]]


def schedule(weights: np.ndarray, stage: int, seed: int, level: np.ndarray | None = None) -> Schedule:
    """The order in which stimuli are processed, its product steps, and the training-set checkpoints.

    Stimuli are taken in a seeded random order (the first batch sets the shift, so it must be a fair
    sample). When the groups' weights take few distinct patterns over the stimuli (the statistics'
    training sets: a split-half, a few fractions, all stimuli), stimuli with the same pattern are
    processed together, so a step multiplies only the rows of the groups that weigh them: a row
    restricted to half of the stimuli then costs half of a full row. Stimuli that no group weighs are
    skipped (not even run through the model).

    With `level` (checkpoints.Checkpoints.levels), the stimuli of level 0 come first, then level 1, ...,
    each level ordered as above and cut into near-equal steps of at most `stage` stimuli; the third value
    maps a step's index to the training sets complete after it (set c: every stimulus of level <= c)."""
    rng = np.random.default_rng(seed)
    n_stim = weights.shape[1]
    if level is None:
        order, windows = _schedule_among(weights, np.arange(n_stim), stage, rng, balanced=False)
        return Schedule(order, windows, {})
    n_sets = int(level.max(initial=0))
    parts, windows, window_level, pos = [], [], [], 0
    for lv in range(n_sets + 1):
        members = np.flatnonzero(level == lv)
        if not len(members):
            continue
        order, steps = _schedule_among(weights, members, stage, rng, balanced=True)
        parts.append(order)
        windows += [Window(w.start + pos, w.stop + pos, w.groups, w.weights) for w in steps]
        window_level += [lv] * len(steps)
        pos += len(order)
    after: dict[int, list[int]] = {}
    levels = np.array(window_level, dtype=np.int64)
    for c in range(n_sets):
        last = int(np.searchsorted(levels, c, side="right")) - 1  # levels are non-decreasing
        if last >= 0:  # an empty training set has no checkpoint (its rows keep no unit)
            after.setdefault(last, []).append(c)
    return Schedule(np.concatenate(parts) if parts else np.zeros(0, np.int64), windows, after)


def _schedule_among(
    weights: np.ndarray, members: np.ndarray, stage: int, rng: np.random.Generator, balanced: bool
) -> tuple[np.ndarray, list[Window]]:
    """`schedule` for the stimuli `members`: (their processing order, its steps, positions from 0)."""
    n_groups = weights.shape[0]
    if n_groups > 1:
        atoms, atom_of = np.unique(weights[:, members].T, axis=0, return_inverse=True)
        atom_of = atom_of.reshape(-1)
        if len(atoms) <= MAX_WEIGHT_PATTERNS and (atoms == 0).any():
            parts, windows, pos = [], [], 0
            for a in rng.permutation(len(atoms)):
                groups = np.flatnonzero(atoms[a] > 0)
                if not len(groups):
                    continue
                chosen = members[rng.permutation(np.flatnonzero(atom_of == a))]
                parts.append(chosen)
                windows += [
                    Window(pos + s0, pos + s1, groups, atoms[a]) for s0, s1 in _steps(len(chosen), stage, balanced)
                ]
                pos += len(chosen)
            if parts:
                return np.concatenate(parts), windows
    order = members[rng.permutation(len(members))]
    return order, [Window(s0, s1) for s0, s1 in _steps(len(members), stage, balanced)]


def _steps(n: int, stage: int, balanced: bool) -> list[tuple[int, int]]:
    """[start, stop) product steps over n stimuli: `stage` at a time, or (balanced) as many near-equal
    steps as that needs (a short last step is a skinny, slow product)."""
    if not balanced:
        return [(s0, min(n, s0 + stage)) for s0 in range(0, n, stage)]
    k = max(1, -(-n // stage))
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(k) if bounds[i + 1] > bounds[i]]


def runs(groups: np.ndarray) -> list[tuple[int, int]]:
    """Sorted group indices -> [g0, g1) runs of consecutive groups."""
    out: list[tuple[int, int]] = []
    for g in groups.tolist():
        if out and out[-1][1] == g:
            out[-1] = (out[-1][0], g + 1)
        else:
            out.append((g, g + 1))
    return out
