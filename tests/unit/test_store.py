"""Atomic publishing, one transaction per step, resuming, and removal of derived results."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from backend import schema
from precompute.core.errors import UserError
from precompute.core.store import Store, StoreBusyError, read_steps_done
from precompute.datasets.writer import remove_dataset, write_dataset
from tests.support.factories import mini_tables

ROOT = Path(__file__).resolve().parents[2]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_info(path: Path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return dict(con.execute("SELECT key, value FROM build_info").fetchall())
    finally:
        con.close()


def test_each_step_publishes_a_new_build(store: Store):
    with store.step("a") as con:
        con.execute("INSERT INTO build_info VALUES ('x', '1')")
    first = build_info(store.served_path)
    with store.step("b"):
        pass
    second = build_info(store.served_path)
    assert first["build_id"] != second["build_id"]
    assert json.loads(second["steps_done"]) == ["a", "b"]
    assert second["schema_version"] == str(schema.SCHEMA_VERSION)
    assert "duckdb" in json.loads(second["packages"])
    assert json.loads(second["step:a"])["seconds"] >= 0


def test_failed_step_leaves_served_file_unchanged_and_rerun_completes(mini_db: Store):
    before = digest(mini_db.served_path)
    with pytest.raises(RuntimeError, match="boom"), mini_db.step("dataset:second") as con:
        con.execute("INSERT INTO datasets (dataset, synthetic) VALUES ('half-written', false)")
        raise RuntimeError("boom")
    assert digest(mini_db.served_path) == before
    con = duckdb.connect(str(mini_db.working_path), read_only=True)
    assert con.execute("SELECT count(*) FROM datasets WHERE dataset = 'half-written'").fetchall()[0][0] == 0
    con.close()
    write_dataset(mini_db, "second", mini_tables(seed=1))
    assert set(read_steps_done(mini_db.served_path)) == {"dataset:mini", "dataset:second"}


def test_killed_step_leaves_served_file_readable_and_rerun_completes(mini_db: Store):
    """SIGKILL in the middle of a step (rows written, not committed): nothing of it survives."""
    before = digest(mini_db.served_path)
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from precompute.core.store import Store
        from precompute.datasets.writer import write_dataset
        from tests.support.factories import mini_tables
        import precompute.datasets.writer as w
        original = w._insert
        def insert_then_die(con, table, frame):
            original(con, table, frame)
            if table == "responses":
                os.kill(os.getpid(), signal.SIGKILL)
        w._insert = insert_then_die
        write_dataset(Store({str(mini_db.served_path)!r}), "killed", mini_tables(seed=2))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    assert digest(mini_db.served_path) == before
    assert read_steps_done(mini_db.served_path) == ["dataset:mini"]
    write_dataset(mini_db, "killed", mini_tables(seed=2))
    con = duckdb.connect(str(mini_db.served_path), read_only=True)
    assert con.execute("SELECT count(*) FROM responses WHERE dataset = 'killed'").fetchall()[0][0] == 9 * 24
    con.close()


def test_a_step_committed_but_never_published_is_published_when_the_lock_is_next_taken(mini_db: Store):
    """A process killed between a step's COMMIT and its publish: the next writer publishes it first."""
    before = build_info(mini_db.served_path)
    with mini_db.step("dataset:unpublished", publish=False) as con:  # as if killed right after COMMIT
        con.execute("INSERT INTO datasets (dataset, synthetic) VALUES ('unpublished', false)")
    assert read_steps_done(mini_db.served_path) == ["dataset:mini"]
    with Store(mini_db.served_path).locked():
        pass
    after = build_info(mini_db.served_path)
    assert after["build_id"] != before["build_id"] and "dataset:unpublished" in json.loads(after["steps_done"])
    assert after["commit_id"] == build_info(mini_db.working_path)["commit_id"]
    digest_now = digest(mini_db.served_path)
    with Store(mini_db.served_path).locked():  # up to date: taking the lock publishes nothing
        pass
    assert digest(mini_db.served_path) == digest_now


def test_temporary_copies_a_killed_process_left_are_removed_when_the_lock_is_taken(mini_db: Store):
    folder = mini_db.served_path.parent
    stale = [folder / "unitscope.duckdb.publish-4242", folder / "unitscope.work.duckdb.tmp-4242"]
    kept = folder / "unitscope.duckdb.backup"
    for path in [*stale, kept]:
        path.write_bytes(b"half a copy")
    with mini_db.locked():
        pass
    assert [p.exists() for p in stale] == [False, False] and kept.exists()


def test_copy_file_copies_in_two_halves_with_or_without_sendfile(tmp_path, monkeypatch):
    import errno
    import os

    from precompute.core.store import copy_file

    data = os.urandom(3_000_001)
    (tmp_path / "src").write_bytes(data)
    sizes = []
    copy_file(tmp_path / "src", tmp_path / "a", midway=lambda: sizes.append((tmp_path / "a").stat().st_size))

    def refuse(*args):
        raise OSError(errno.EINVAL, "sendfile refused")

    monkeypatch.setattr(os, "sendfile", refuse)
    copy_file(tmp_path / "src", tmp_path / "b", midway=lambda: sizes.append((tmp_path / "b").stat().st_size))
    assert (tmp_path / "a").read_bytes() == data == (tmp_path / "b").read_bytes()
    assert sizes == [1_500_000, 1_500_000]


def test_second_writer_is_refused(store: Store):
    other = Store(store.served_path)
    with store.locked(), pytest.raises(StoreBusyError, match="another precompute process"), other.locked():
        pass


def test_existing_name_needs_replace_and_replace_removes_derived_rows(mini_db: Store):
    with pytest.raises(UserError, match="--replace"):
        write_dataset(mini_db, "mini", mini_tables(seed=3))
    with mini_db.step("match:mini:m") as con:
        con.execute("INSERT INTO matches VALUES ('mini', 'm', 'V4-000', 1, 0, 0, 0, 0, 0.5)")
    write_dataset(mini_db, "mini", mini_tables(seed=3), replace=True)
    con = duckdb.connect(str(mini_db.served_path), read_only=True)
    assert con.execute("SELECT count(*) FROM matches").fetchall()[0][0] == 0
    assert "match:mini:m" not in read_steps_done(mini_db.served_path)
    con.close()


def test_remove_dataset_removes_everything_derived(mini_db: Store):
    with mini_db.step("match:mini:m") as con:
        con.execute("INSERT INTO matches VALUES ('mini', 'm', 'V4-000', 1, 0, 0, 0, 0, 0.5)")
        con.execute(
            "INSERT INTO scores (dataset, model, region, metric, value) VALUES ('mini', 'm', 'V4', "
            "'neural_correlation', 0.5)"
        )
    remove_dataset(mini_db, "mini")
    con = duckdb.connect(str(mini_db.served_path), read_only=True)
    for table in schema.tables_with_column("dataset"):
        assert con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0] == 0, table
    con.close()
    assert read_steps_done(mini_db.served_path) == []
    with pytest.raises(UserError, match="no dataset named"):
        remove_dataset(mini_db, "mini")


def test_trials_and_responses_round_trip(mini_db: Store):
    tables = mini_tables()
    con = duckdb.connect(str(mini_db.served_path), read_only=True)
    got = con.execute(
        "SELECT s.idx, st.idx, r.response FROM responses r JOIN sites s USING (dataset, site_id) "
        "JOIN stimuli st USING (dataset, stimulus_id) WHERE r.dataset = 'mini'"
    ).fetchall()
    for site_idx, stim_idx, value in got:
        assert value == pytest.approx(float(tables.responses[site_idx, stim_idx]), abs=1e-6)
    n_trials = con.execute("SELECT count(*) FROM trials").fetchall()[0][0]
    assert n_trials == int((~__import__("numpy").isnan(tables.trials)).sum())
    con.close()


@pytest.mark.parametrize(
    ("step", "dataset", "model", "expected"),
    [
        ("dataset:mini", "mini", None, True),
        ("dataset:mini2", "mini", None, False),
        ("match:mini:toy", "mini", None, True),
        ("match:mini:toy", None, "toy", True),
        ("match:mini:toy2", None, "toy", False),
        ("model:toy", None, "toy", True),
        ("model:toy-b", None, "toy", False),
        ("analyze:one_to_one:mini:toy", None, "toy", True),
        ("analyze:one_to_one:mini:toy", "mini2", None, False),
        ("analyze:comparisons:mini", None, "toy", True),
        ("analyze:comparisons:mini", "mini", None, True),
        ("analyze:cross_dataset@mini2:mini:toy", "mini2", None, True),  # it reads mini2 too
        ("analyze:cross_dataset@mini2:mini:toy", "mini3", None, False),
    ],
)
def test_step_dependencies(step, dataset, model, expected):
    from precompute.core.store import step_depends_on

    assert step_depends_on(step, dataset=dataset, model=model) is expected


def test_a_file_from_before_a_nullable_column_opens_and_gains_it(tmp_path):
    """layers.layout came later: an older file reads as before (NULL: the model's layout), read-only too, and the
    writer adds the column in place; the old rows keep their values."""
    from precompute.models import registry

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    schema.create_all(con)
    con.execute("ALTER TABLE layers DROP COLUMN layout")  # as written before the column existed
    con.execute("INSERT INTO layers VALUES ('m', 0, 'relu', 'Relu', 0.0, 4, 2, 2, 16, 'relu')")
    con.close()
    con = duckdb.connect(str(path), read_only=True)
    (old,) = registry.read_layers(con, "m")
    con.close()
    assert (old.layer, old.channels, old.height, old.width, old.layout) == ("relu", 4, 2, 2, "")
    store = Store(path)
    with store.connect() as con:
        assert [r[0] for r in con.execute("DESCRIBE layers").fetchall()] == list(
            schema.TABLES_BY_NAME["layers"].column_names
        )
        assert registry.read_layers(con, "m") == [old]
        schema.create_all(con)  # idempotent
