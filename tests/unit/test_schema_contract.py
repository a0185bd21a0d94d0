"""The schema module is the one source of truth: every table exists, keys hold, every query runs."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np

from backend import queries, schema
from backend.db import Database
from precompute.core.store import Store
from tests.support.factories import mini_tables

ROOT = Path(__file__).resolve().parents[2]


def test_every_table_and_column_exists(mini_db: Store):
    con = duckdb.connect(str(mini_db.served_path), read_only=True)
    for table in schema.TABLES:
        cols = [r[0] for r in con.execute(f'DESCRIBE "{table.name}"').fetchall()]
        assert tuple(cols) == table.column_names, table.name
        assert all(c.doc for c in table.columns), f"undocumented column in {table.name}"
    con.close()


def test_keys_are_unique_in_a_written_database(mini_db: Store):
    con = duckdb.connect(str(mini_db.served_path), read_only=True)
    for table in schema.TABLES:
        if not table.key:
            continue
        keys = ", ".join(f'"{k}"' for k in table.key)
        dupes = con.execute(
            f'SELECT count(*) FROM (SELECT {keys} FROM "{table.name}" GROUP BY ALL HAVING count(*) > 1)'
        )
        assert dupes.fetchall()[0][0] == 0, table.name
    con.close()


def test_schema_doc_is_up_to_date():
    assert (ROOT / "docs" / "schema.md").read_text() == schema.describe_markdown(), (
        'regenerate docs/schema.md: python -c "from backend.schema import describe_markdown; '
        "open('docs/schema.md','w').write(describe_markdown())\""
    )


def test_every_query_runs_against_the_miniature_database(mini_db: Store):
    db = Database(mini_db.served_path)
    tables = mini_tables()
    info = queries.build_info(db)
    assert info["schema_version"] == str(schema.SCHEMA_VERSION) and len(info["build_id"]) == 32
    counts = queries.table_counts(db)
    assert counts["stimuli"] == 24 and counts["sites"] == 9 and counts["responses"] == 9 * 24
    assert queries.datasets(db)["dataset"].tolist() == ["mini"]
    stim = queries.stimuli(db, "mini")
    assert stim["idx"].tolist() == list(range(24))
    assert queries.stimulus_png(db, "mini", "stim003") == tables.images[3]
    assert queries.stimulus_png(db, "mini", "nope") is None
    sites = queries.sites(db, "mini")
    assert sites["site_id"].tolist() == tables.sites["site_id"].tolist()
    site_df, matrix = queries.response_matrix(db, "mini", "IT")
    assert site_df["region"].eq("IT").all()
    np.testing.assert_allclose(matrix, tables.responses[4:], rtol=0, atol=1e-6)
    rf = queries.site_rf_map(db, "mini", "V4-001")
    assert len(rf) == 1 and len(rf["map"].iloc[0]) == 16 * 16
    db.close()


def test_reader_sees_a_new_build_after_publish(mini_db: Store):
    db = Database(mini_db.served_path)
    first = db.build_id()
    with db.pinned():
        mini_db.publish()
        assert db.build_id() == first  # a pinned request stays on its build
    assert db.build_id() != first
    db.close()


ARGUMENTS = {
    "dataset": "mini",
    "model": "toy",
    "site_id": "V4-000",
    "region": "V4",
    "layer_idx": 1,
    "channel": 1,
    "y": 0,
    "x": 0,
    "stimulus_id": "stim000",
    "metric": "neural_correlation",
}


def test_every_named_query_runs(results_env):
    """Every function in backend.queries runs against a miniature database with results (contract test)."""
    import inspect

    db = Database(results_env.served_path)
    ran = []
    for name, fn in inspect.getmembers(queries, inspect.isfunction):
        if fn.__module__ != queries.__name__:
            continue
        params = list(inspect.signature(fn).parameters)[1:]
        missing = [p for p in params if p not in ARGUMENTS]
        assert not missing, f"add test values for {missing} (query {name})"
        fn(db, **{p: ARGUMENTS[p] for p in params})
        ran.append(name)
    assert {"scores", "site_matches", "layer_topk", "featuremap_best", "decoding", "rotations"} <= set(ran)
    db.close()
