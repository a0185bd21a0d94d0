"""Cross-validation folds of a dataset: every stimulus in one of N_FOLDS folds, stratified by object.

Folds are a fact of the dataset, written with it (table `stimulus_folds`) and shared by every model, so
every held-out score of every model selects on the same training stimuli and scores on the same held-out
ones (paired comparisons across models are then paired in the stimuli too). The matching run processes
the stimuli fold by fold and searches each nested training set "folds 0 .. t-1" as it completes
(precompute/match/checkpoints.py); docs/metrics.md says which held-out score uses which folds.

Stratification: by object when every stimulus names one (Brain-Score's convention for HvM: a held-out set
never lacks a whole object), else by category, else none. Within a stratum the stimuli are shuffled and
dealt to the folds in turn, continuing from where the previous stratum stopped (strata in random order),
so every fold holds an equal share of every stratum and fold sizes differ by at most one. Seeded by
FOLD_SEED and the dataset's name: the same dataset gets the same folds on every machine.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

N_FOLDS = 10
FOLD_SEED = 0
#: The nested training sets every matching run searches besides all stimuli: folds 0 .. t-1 for each t
#: (precompute/match/checkpoints.py). All of them give the selection curve (Figure S1).
TRAIN_FOLDS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
#: heldout_split_half: select on folds 0-4, score on folds 5-9
SPLIT_HALF_TRAIN_FOLDS = 5
#: heldout_n2n (default protocol): select on folds 0-8 (90%), score on fold 9 (Brain-Score's 90/10 proportion)
N2N_TRAIN_FOLDS = 9


def assign_folds(strata: Sequence | None, n: int, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) fold 0..n_folds-1 of every stimulus: each stratum dealt round-robin over the folds."""
    if n_folds < 2:
        raise ValueError("need at least 2 folds")
    if strata is None:
        labels = np.zeros(n, dtype=np.int64)
    else:
        values = ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in strata]
        if len(values) != n:
            raise ValueError(f"strata has {len(values)} labels for {n} stimuli")
        labels = np.unique(np.array(values, dtype=object).astype(str), return_inverse=True)[1].reshape(-1)
    fold = np.empty(n, dtype=np.int64)
    start = int(rng.integers(n_folds))
    for label in rng.permutation(np.unique(labels)):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold[members] = (start + np.arange(len(members))) % n_folds
        start = (start + len(members)) % n_folds
    return fold


def strata_of(stimuli: pd.DataFrame) -> list | None:
    """The stratification labels of a stimuli frame (idx order): objects, else categories, else None."""
    for column in ("object", "category"):
        if column in stimuli.columns and stimuli[column].notna().all() and stimuli[column].nunique() > 1:
            return stimuli[column].astype(str).tolist()
    return None


def folds_for(dataset: str, stimuli: pd.DataFrame) -> np.ndarray:
    """The dataset's folds for a stimuli frame in idx order."""
    rng = np.random.default_rng([FOLD_SEED, zlib.crc32(dataset.encode())])
    return assign_folds(strata_of(stimuli), len(stimuli), N_FOLDS, rng)


def write_folds(con, dataset: str, stimuli: pd.DataFrame) -> np.ndarray:
    """Compute and insert the dataset's folds (stimuli frame in idx order); returns them."""
    fold = folds_for(dataset, stimuli)
    frame = pd.DataFrame(
        {
            "dataset": dataset,
            "stimulus_id": stimuli["stimulus_id"].astype(str).to_numpy(),
            "fold": fold.astype(np.int32),
        }
    )
    con.register("_incoming_folds", frame)
    try:
        con.execute(
            "INSERT INTO stimulus_folds (dataset, stimulus_id, fold) "
            "SELECT dataset, stimulus_id, fold FROM _incoming_folds"
        )
    finally:
        con.unregister("_incoming_folds")
    return fold


def read_folds(con, dataset: str) -> np.ndarray | None:
    """(stimuli,) fold of every stimulus in idx order, or None when the dataset has none stored."""
    got = con.execute(
        "SELECT t.idx, f.fold FROM stimulus_folds f JOIN stimuli t USING (dataset, stimulus_id) "
        "WHERE f.dataset = ? ORDER BY t.idx",
        [dataset],
    ).fetchall()
    n = con.execute("SELECT count(*) FROM stimuli WHERE dataset = ?", [dataset]).fetchone()[0]
    if not got or len(got) != n:
        return None
    return np.array([f for _, f in got], dtype=np.int64)


def ensure_folds(con, dataset: str) -> np.ndarray:
    """The dataset's folds (idx order), written now when a database from before folds lacks them."""
    fold = read_folds(con, dataset)
    if fold is not None:
        return fold
    con.execute("DELETE FROM stimulus_folds WHERE dataset = ?", [dataset])
    stimuli = con.execute(
        "SELECT stimulus_id, object, category FROM stimuli WHERE dataset = ? ORDER BY idx", [dataset]
    ).df()
    return write_folds(con, dataset, stimuli)


def training_masks(fold: np.ndarray, train_folds: Sequence[int]) -> np.ndarray:
    """(len(train_folds), stimuli) bool: training set t is folds 0 .. t-1 (nested)."""
    return np.stack([fold < t for t in train_folds]) if len(train_folds) else np.zeros((0, len(fold)), bool)


def fold_out_masks(fold: np.ndarray) -> np.ndarray:
    """(N_FOLDS, stimuli) bool: training set f is every fold but f (10-fold cross-validation: the exact
    neuron_to_neuron of --protocol paper, and PLS)."""
    return np.stack([fold != f for f in range(N_FOLDS)])
