"""The tables an analysis writes, and its own rows it reads back: `ContextTables`, part of `AnalysisContext`.

Result tables (`scores`, `layer_scores`, `site_scores`, `selection_curve`, `model_comparisons`): `write_*`
replaces the rows of this (dataset, model[, metric]); `clear_outputs` empties an analysis's outputs before
a rerun. The tables one analysis owns (`runnerups`, `featuremap_counts`, `rotations`, `decoding`,
`confusions`, `receptive_fields`; the columns `backend/schema/` declares): `replace_rows`, `append_rows`,
`delete_rows` and `read_rows` on this (dataset, model), inside the step's transaction. `record` sets an
entry of a build_info object (analysis notes). With precompute/analyses/context.py, the only place in
precompute/analyses and precompute/statistics that holds SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from backend import schema
from precompute.analyses.registry import RESULT_TABLES
from precompute.core.failpoints import failpoint

#: the columns of a `scores` row an analysis writes (write_scores), in order
SCORE_COLUMNS = ["region", "metric", "value", "ci_low", "ci_high", "ci_scheme"]


class ContextTables:
    """AnalysisContext's writers (a mixin: the context's fields con, store, dataset, model, models, options)."""

    # ------------------------------------------------------------------ result tables
    def write_scores(self, rows: pd.DataFrame | Sequence[tuple]) -> None:
        """Replace `scores` rows of this (dataset, model, metric): a DataFrame with SCORE_COLUMNS (ci_scheme
        optional), or tuples in SCORE_COLUMNS order."""
        if not isinstance(rows, pd.DataFrame):
            rows = pd.DataFrame(list(rows), columns=SCORE_COLUMNS)
        self._write("scores", rows, tuple(SCORE_COLUMNS[:-1]))

    def write_layer_scores(self, rows: pd.DataFrame) -> None:
        """Replace `layer_scores` rows (region, layer_idx, metric, value, ci_low, ci_high[, ci_scheme])."""
        self._write("layer_scores", rows, ("region", "layer_idx", "metric", "value", "ci_low", "ci_high"))

    def write_site_scores(self, rows: pd.DataFrame) -> None:
        """Replace `site_scores` rows (site_id, metric, value)."""
        self._write("site_scores", rows, ("site_id", "metric", "value"))

    def write_selection_curve(self, rows: pd.DataFrame) -> None:
        """Replace `selection_curve` rows (region, fraction, value, ci_low, ci_high[, ci_scheme]) of this
        (dataset, model)."""
        self._write("selection_curve", rows, ("region", "fraction", "value", "ci_low", "ci_high"))

    def write_model_comparisons(self, rows: pd.DataFrame) -> None:
        """Replace `model_comparisons` rows (region, model_a, model_b, metric, difference, p_value[, ci_low,
        ci_high, p_holm, test, ci_scheme])."""
        cols = ("region", "model_a", "model_b", "metric", "difference", "p_value")
        df = _columns(rows, cols, "model_comparisons", ("ci_low", "ci_high", "p_holm", "test", "ci_scheme"))
        for (a, b, metric), _ in df.groupby(["model_a", "model_b", "metric"]):
            self.con.execute(
                "DELETE FROM model_comparisons WHERE dataset = ? AND metric = ? AND "
                "((model_a = ? AND model_b = ?) OR (model_a = ? AND model_b = ?))",
                [self.dataset, metric, a, b, b, a],
            )
        df.insert(0, "dataset", self.dataset)
        self._insert("model_comparisons", df)

    def _write(self, table: str, rows: pd.DataFrame, cols: tuple[str, ...]) -> None:
        model = self._model(None)
        df = _columns(rows, cols, table, ("ci_scheme",) if "ci_low" in cols else ())
        if table != "selection_curve":
            for metric in df["metric"].unique():
                self.con.execute(
                    f'DELETE FROM "{table}" WHERE dataset = ? AND model = ? AND metric = ?',
                    [self.dataset, model, str(metric)],
                )
        else:
            self.con.execute("DELETE FROM selection_curve WHERE dataset = ? AND model = ?", [self.dataset, model])
        df.insert(0, "model", model)
        df.insert(0, "dataset", self.dataset)
        self._insert(table, df)

    def _insert(self, table: str, df: pd.DataFrame) -> None:
        if df.empty:
            return
        name = f"_analyze_{table}"
        self.con.register(name, df)
        try:
            cols = ", ".join(f'"{c}"' for c in df.columns)
            self.con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM "{name}"')
        finally:
            self.con.unregister(name)
        failpoint("analyze.rows_written")

    def clear_outputs(self, outputs: Sequence[tuple[str, str]]) -> None:
        """Delete the (table, metric) rows of this (dataset, model): a rerun replaces them whole.

        A metric naming options (`cross_dataset@{select_on}`) is formatted with this run's options."""
        for table, metric in outputs:
            if "{" in metric:
                metric = metric.format(**self.options)
            if table == "model_comparisons":
                if self.models:
                    marks = ", ".join("?" for _ in self.models)
                    self.con.execute(
                        f"DELETE FROM model_comparisons WHERE dataset = ? AND metric = ? AND model_a IN ({marks}) "
                        f"AND model_b IN ({marks})",
                        [self.dataset, metric, *self.models, *self.models],
                    )
            elif table == "selection_curve":
                self.con.execute(
                    "DELETE FROM selection_curve WHERE dataset = ? AND model = ?", [self.dataset, self._model(None)]
                )
            elif table in RESULT_TABLES:
                self.con.execute(
                    f'DELETE FROM "{table}" WHERE dataset = ? AND model = ? AND metric = ?',
                    [self.dataset, self._model(None), metric],
                )

    # ------------------------------------------------------------------ tables an analysis owns
    def replace_rows(self, table: str, rows: pd.DataFrame, *, where: dict[str, object] | None = None) -> int:
        """Delete `table`'s rows of this (dataset, model) (and `where` column = value), then insert `rows`.

        Returns the number of rows inserted."""
        self._conditions(table, where)  # an unknown `where` column is an error before anything is deleted
        _owned_columns(table, rows)
        self.delete_rows(table, where=where)
        return self.append_rows(table, rows)

    def append_rows(self, table: str, rows: pd.DataFrame) -> int:
        """Insert `rows` (every column of the table except dataset and model; extra columns are an error:
        they would be silently dropped) for this (dataset, model). Returns the number of rows inserted."""
        cols = _owned_columns(table, rows)
        if rows.empty:
            return 0
        df = rows.loc[:, cols].copy()
        df.insert(0, "model", self._model(None))
        df.insert(0, "dataset", self.dataset)
        self._insert(table, df)
        return len(df)

    def delete_rows(
        self,
        table: str,
        *,
        where: dict[str, object] | None = None,
        not_null: Sequence[str] = (),
        keys: pd.DataFrame | None = None,
    ) -> None:
        """Delete `table`'s rows of this (dataset, model): all of them, or those with `where` column = value,
        no NULL in the `not_null` columns and (given `keys`) the values of one of `keys`' rows in its columns."""
        conditions, params = self._conditions(table, where, not_null)
        if keys is None:
            self.con.execute(f'DELETE FROM "{table}" d WHERE {conditions}', params)
            return
        _check_names(table, keys.columns)
        name = f"_analyses_{table}_keys"
        self.con.register(name, keys)
        try:
            on = " AND ".join(f'd."{c}" = k."{c}"' for c in keys.columns)
            self.con.execute(f'DELETE FROM "{table}" d USING "{name}" k WHERE {conditions} AND {on}', params)
        finally:
            self.con.unregister(name)

    def read_rows(self, table: str, columns: Sequence[str], *, not_null: Sequence[str] = ()) -> pd.DataFrame:
        """`columns` of `table`'s rows of this (dataset, model) (those without NULL in the `not_null` columns)."""
        _check_names(table, columns)
        conditions, params = self._conditions(table, None, not_null)
        quoted = ", ".join(f'd."{c}"' for c in columns)
        return self.con.execute(f'SELECT {quoted} FROM "{table}" d WHERE {conditions}', params).df()

    def _conditions(
        self, table: str, where: dict[str, object] | None, not_null: Sequence[str] = ()
    ) -> tuple[str, list]:
        """SQL conditions (table alias d) selecting this (dataset, model)'s rows of `table`, and their parameters."""
        _check_names(table, [*(where or {}), *not_null])
        conditions = ["d.dataset = ?", "d.model = ?"]
        params: list = [self.dataset, self._model(None)]
        for col, value in (where or {}).items():
            conditions.append(f'd."{col}" = ?')
            params.append(value)
        conditions += [f'd."{c}" IS NOT NULL' for c in not_null]
        return " AND ".join(conditions), params

    def record(self, key: str, entry: str, value: object) -> None:
        """Set entry -> value in the JSON object build_info[key] (Store.record); nothing without a store."""
        if self.store is not None:
            self.store.record(self.con, key, entry, value)


def _columns(rows: pd.DataFrame, cols: tuple[str, ...], table: str, optional: tuple[str, ...] = ()) -> pd.DataFrame:
    missing = [c for c in cols if c not in rows.columns]
    if missing:
        raise ValueError(f"rows for {table} lack columns {missing}")
    df = rows.loc[:, list(cols) + [c for c in optional if c in rows.columns]].copy()
    for c in ("value", "ci_low", "ci_high", "difference", "p_value", "p_holm", "fraction"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df


def _check_names(table: str, names) -> None:
    spec = schema.TABLES_BY_NAME[table]
    for col in names:
        if col not in spec.column_names:
            raise ValueError(f"{table} has no column {col!r}")


def _owned_columns(table: str, rows: pd.DataFrame) -> list[str]:
    """The columns of `table` an analysis writes (all but dataset and model); a ValueError unless `rows` has
    exactly them."""
    cols = [c for c in schema.TABLES_BY_NAME[table].column_names if c not in ("dataset", "model")]
    extra = sorted(set(rows.columns) - set(cols))
    missing = [c for c in cols if c not in rows.columns]
    if extra or missing:
        raise ValueError(f"rows for {table}: missing columns {missing}, unknown columns {extra}")
    return cols
