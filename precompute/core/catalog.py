"""What the database holds: the one place that asks whether a dataset or a model exists.

`require_dataset` / `require_model` raise the UserError every command shows for an unknown name: the known
names (or the close ones) and the command that lists or adds them.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import duckdb

from precompute.core.errors import UserError


def dataset_names(con) -> list[str]:
    return [d for (d,) in con.execute("SELECT dataset FROM datasets ORDER BY dataset").fetchall()]


def model_names(con) -> list[str]:
    return [m for (m,) in con.execute("SELECT model FROM models ORDER BY model").fetchall()]


def has_dataset(con, name: str) -> bool:
    return con.execute("SELECT count(*) FROM datasets WHERE dataset = ?", [name]).fetchall()[0][0] > 0


def has_model(con, name: str) -> bool:
    return con.execute("SELECT count(*) FROM models WHERE model = ?", [name]).fetchall()[0][0] > 0


def require_dataset(con, name: str) -> None:
    """UserError naming the known datasets when `name` is not one of them."""
    if not has_dataset(con, name):
        known = dataset_names(con)
        raise UserError(
            f"dataset {name!r} does not exist (known: {', '.join(known) or 'none'}); import it with "
            "`python -m precompute datasets import` (see `python -m precompute datasets list`)"
        )


def require_model(con, name: str) -> None:
    """UserError naming the known models when `name` is not one of them."""
    if not has_model(con, name):
        known = model_names(con)
        raise UserError(
            f"model {name!r} does not exist (known: {', '.join(known) or 'none'}); add it with "
            "`python -m precompute models add` (see `python -m precompute models list`)"
        )


def close_model_hint(con, model: str) -> str:
    """ "; close names: a, b" for a misspelt model (or the whole list, or how to add one)."""
    names = model_names(con)
    close = difflib.get_close_matches(model, names, n=5, cutoff=0.5)
    if close:
        return f"; close names: {', '.join(close)}"
    return f"; models: {', '.join(names)}" if names else " (no models yet: see `models add --help`)"


def matched_models(con, dataset: str) -> list[str]:
    """Models with match tables on the dataset, by name."""
    return [
        m for (m,) in con.execute("SELECT model FROM match_runs WHERE dataset = ? ORDER BY model", [dataset]).fetchall()
    ]


def inputs_fingerprint(con, dataset: str, models: Sequence[str]) -> list:
    """What a step's results derive from: the dataset's and each model's match run's creation times.

    A step whose recorded fingerprint differs (the dataset was re-imported, a model re-matched, or a
    cross-model step's set of matched models changed) is redone even though it is recorded as done."""
    ds = con.execute("SELECT created_at FROM datasets WHERE dataset = ?", [dataset]).fetchone()
    runs = dict(con.execute("SELECT model, created_at FROM match_runs WHERE dataset = ?", [dataset]).fetchall())
    return [str(ds[0] if ds else None), *([m, str(runs.get(m))] for m in models)]


def stored_names(store) -> tuple[set[str], set[str]]:
    """The datasets and models of the store's database (the working copy when one exists, else the served
    file), read without creating or locking anything: for checks made before a long job starts."""
    for path in (store.working_path, store.served_path):
        if not path.exists():
            continue
        try:
            con = duckdb.connect(str(path), read_only=True)
        except duckdb.Error:  # e.g. the working file is open by a running writer: read the served one
            continue
        try:
            return set(dataset_names(con)), set(model_names(con))
        except duckdb.Error:
            continue
        finally:
            con.close()
    return set(), set()
