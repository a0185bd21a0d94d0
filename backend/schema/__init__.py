"""The DuckDB schema: the single source of truth for every table and column.

Modules: `types` (Column, Table, shared columns), `inputs` (build info, datasets, models), `results`
(matching, statistics, analyses). Everything is imported from here: `from backend import schema`.

The precompute writer creates tables from here, the backend queries read them, and the test fixtures
build miniature databases with them. Every column is documented where it is declared.

Conventions (DESIGN.md, Contracts): ids are strings; `stimuli.idx` (0..n-1) is the one order used by
every stored array; a unit is (layer_idx, channel, y, x); `r` is a Pearson correlation over stimuli.
"""

from __future__ import annotations

import duckdb

from backend.schema import inputs, results
from backend.schema.types import C, Column, Table

__all__ = [
    "MODEL_COLUMNS",
    "SCHEMA_VERSION",
    "TABLES",
    "TABLES_BY_NAME",
    "C",
    "Column",
    "Table",
    "create_all",
    "describe_markdown",
    "remove_dataset_rows",
    "remove_model_rows",
    "tables_with_column",
]

SCHEMA_VERSION = 1

TABLES: tuple[Table, ...] = inputs.TABLES + results.TABLES

TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

#: Tables whose rows belong to one model, through these columns.
MODEL_COLUMNS = ("model", "model_a", "model_b", "reference_model")


def create_all(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table that does not exist yet and add the nullable columns an older file lacks (idempotent).

    A column added to the schema later goes at the end of its table and is nullable (NULL meaning "as
    before"), so that a database written before it opens and reads the same after `ALTER TABLE ... ADD COLUMN`.
    """
    for table in TABLES:
        con.execute(table.ddl())
    have: dict[str, set[str]] = {}
    for name, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_catalog = current_database()"
    ).fetchall():
        have.setdefault(name, set()).add(column)
    for table in TABLES:
        for c in table.columns:
            if c.name in have.get(table.name, set()):
                continue
            if not c.nullable:
                raise RuntimeError(
                    f"table {table.name} lacks the NOT NULL column {c.name}: an older database "
                    f"cannot be upgraded in place; rebuild it"
                )
            con.execute(f'ALTER TABLE "{table.name}" ADD COLUMN "{c.name}" {c.type}')


def tables_with_column(column: str) -> list[str]:
    return [t.name for t in TABLES if column in t.column_names]


def remove_dataset_rows(con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    """Delete a dataset and every result derived from it (inside the caller's transaction)."""
    for name in tables_with_column("dataset"):
        con.execute(f'DELETE FROM "{name}" WHERE dataset = ?', [dataset])
    # results of other datasets that read this one are named after it: metric `cross_dataset@<dataset>`
    for name in tables_with_column("metric"):
        con.execute(f'DELETE FROM "{name}" WHERE ends_with(metric, ?)', ["@" + dataset])


def remove_model_rows(con: duckdb.DuckDBPyConnection, model: str) -> None:
    """Delete a model and every result derived from it (inside the caller's transaction)."""
    for table in TABLES:
        cols = [c for c in ("model", "model_a", "model_b") if c in table.column_names]
        if cols:
            where = " OR ".join(f'"{c}" = ?' for c in cols)
            con.execute(f'DELETE FROM "{table.name}" WHERE {where}', [model] * len(cols))


def describe_markdown() -> str:
    """The schema as Markdown (docs/schema.md is generated from this)."""
    lines = [
        f"# Database schema (version {SCHEMA_VERSION})",
        "",
        "Generated from `backend/schema/`; do not edit by hand.",
        "",
    ]
    for t in TABLES:
        lines += [f"## `{t.name}`", "", t.doc, "", "| column | type | meaning |", "|---|---|---|"]
        for c in t.columns:
            lines.append(f"| `{c.name}` | {c.type} | {c.doc} |")
        if t.key:
            lines += ["", "Key: " + ", ".join(f"`{k}`" for k in t.key)]
        lines.append("")
    return "\n".join(lines)
