"""The cluster's pure parts: the task graph of a batch, scopes, input hashes, result files (complete only
with a matching manifest), build_info changes, and the coordinator's ingest (one transaction)."""

from __future__ import annotations

import json

import duckdb
import pytest

from backend import schema
from precompute.cluster import results
from precompute.cluster.executor import run_tasks
from precompute.cluster.ingest import ingest
from precompute.cluster.report import Progress, TaskOutcome
from precompute.cluster.tasks import (
    INGESTED_KEY,
    build_tasks,
    check_graph,
    file_slug,
    input_hash,
    scope_filter,
    scope_tables,
    snapshot_filter,
)
from precompute.cluster.worker import build_info_changes
from precompute.core.errors import UserError
from precompute.core.store import Store
from precompute.jobs.batch_file import AnalyzeSpec, RunSpec, parse_batch


def _runs(*pairs):
    return [RunSpec(d, m, top_k=5) for d, m in pairs]


# ---------------------------------------------------------------------------------------------- graph
def test_graph_orders_matches_then_each_pairs_analyses_then_cross_model():
    runs = _runs(("d1", "a"), ("d1", "b"), ("d2", "a"))
    analyses = [AnalyzeSpec("d1", m, ("runnerups", "neural_correlation", "model_comparison")) for m in ("a", "b")]
    analyses.append(AnalyzeSpec("d2", "a", ("runnerups",)))
    tasks = build_tasks(runs, analyses)
    check_graph(tasks)
    ids = [t.task_id for t in tasks]
    assert ids[:3] == ["match:d1:a", "match:d1:b", "match:d2:a"]
    by_id = {t.task_id: t for t in tasks}
    # registry order within a pair (neural_correlation is registered before runnerups), chained
    assert by_id["analyze:neural_correlation:d1:a"].deps == ("match:d1:a",)
    assert by_id["analyze:runnerups:d1:a"].deps == ("analyze:neural_correlation:d1:a",)
    assert by_id["analyze:runnerups:d2:a"].deps == ("match:d2:a",)
    # the cross-model analysis runs once per dataset, after every task on it and none of the other dataset
    cross = by_id["analyze:model_comparison:d1"]
    assert cross.model is None and ids[-1] == cross.task_id
    assert set(cross.deps) == {i for i in ids[:-1] if by_id[i].dataset == "d1"} and len(cross.deps) == 2 + 4
    assert len(ids) == len(set(ids)) == 3 + 2 * 2 + 1 + 1


def test_graph_without_runs_has_no_dependency_on_matching_and_dedupes():
    analyses = [AnalyzeSpec("d", "m", ("runnerups",)), AnalyzeSpec("d", "m", ("runnerups",), force=True)]
    tasks = build_tasks(_runs(("d", "x"), ("d", "x")), analyses)
    assert [(t.task_id, t.deps, t.force) for t in tasks] == [
        ("match:d:x", (), False),
        ("analyze:runnerups:d:m", (), True),
    ]
    with pytest.raises(UserError, match="twice with different settings"):
        build_tasks([], [AnalyzeSpec("d", "m", ("runnerups",)), AnalyzeSpec("d", "m", ("runnerups",), seed=3)])
    with pytest.raises(UserError, match="unknown analysis"):
        build_tasks([], [AnalyzeSpec("d", "m", ("nope",))])


def test_graph_runs_cross_dataset_after_both_matching_runs_and_names_its_step_by_both_datasets():
    runs = _runs(("a", "m"), ("b", "m"))
    analyses = [
        AnalyzeSpec("b", "m", ("cross_dataset", "runnerups"), select_on="a"),
        AnalyzeSpec("b", "m", ("cross_dataset",), select_on="c"),
    ]  # c is not run here: no dependency
    tasks = build_tasks(runs, analyses)
    check_graph(tasks)
    by_id = {t.task_id: t for t in tasks}
    cross_a, cross_c = by_id["analyze:cross_dataset@a:b:m"], by_id["analyze:cross_dataset@c:b:m"]
    assert cross_a.options == {"select_on": "a"} and cross_c.options == {"select_on": "c"}
    # chained with the pair's other analyses (same scope), and after A's matching run
    chain = [t.task_id for t in tasks if t.kind == "analyze"]
    assert chain == ["analyze:cross_dataset@a:b:m", "analyze:cross_dataset@c:b:m", "analyze:runnerups:b:m"]
    assert cross_a.deps == ("match:b:m", "match:a:m")
    assert cross_c.deps == ("analyze:cross_dataset@a:b:m",)
    assert "selected on" not in by_id["analyze:runnerups:b:m"].describe()
    assert cross_a.describe() == "analyze cross_dataset on b x m, select on a"
    # named without the dataset of selection: refused before anything runs; in "all analyses": left out
    with pytest.raises(UserError, match="needs `select_on`"):
        build_tasks(runs, [AnalyzeSpec("b", "m", ("cross_dataset",))])
    assert not any("cross_dataset" in t.task_id for t in build_tasks(runs, [AnalyzeSpec("b", "m")]))
    assert any("cross_dataset@a" in t.task_id for t in build_tasks(runs, [AnalyzeSpec("b", "m", select_on="a")]))


def test_check_graph_rejects_a_dependency_that_comes_later():
    tasks = build_tasks(_runs(("d", "m")), [AnalyzeSpec("d", "m", ("runnerups",))])
    with pytest.raises(ValueError, match="do not come before"):
        check_graph(list(reversed(tasks)))


def test_batch_file_analyze_entries_and_executor_settings(tmp_path):
    batch = parse_batch(
        {
            "executor": "dask",
            "scheduler": "tcp://h:8786",
            "results_dir": "res",
            "run": [{"dataset": "d", "models": ["a", "b"]}],
            "analyze": [{"datasets": ["d"], "model": "a", "analyses": ["runnerups"], "seed": 2}],
        },
        tmp_path,
    )
    assert (batch.executor, batch.scheduler, batch.results_dir) == ("dask", "tcp://h:8786", str(tmp_path / "res"))
    assert batch.analyses == [AnalyzeSpec("d", "a", ("runnerups",), "default", 2, False)]
    assert any(line.startswith("analyze runnerups on d x a") for line in batch.describe())
    batch = parse_batch(
        {"analyze": [{"datasets": ["b", "c"], "model": "m", "analyses": ["cross_dataset"], "select_on": "a"}]}
    )
    assert [(s.dataset, s.select_on) for s in batch.analyses] == [("b", "a"), ("c", "a")]
    assert batch.describe()[0] == "analyze cross_dataset on b x m (protocol default, seed 0, selected on a)"
    for bad, message in (
        ({"executor": "slurm"}, "executor"),
        ({"analyze": [{"dataset": "d"}]}, "model"),
        ({"analyze": [{"dataset": "d", "model": "m", "select_on": "d"}]}, "itself"),
        ({"analyze": [{"dataset": "d", "model": "m", "select_on": 3}]}, "select_on must"),
        ({"analyze": [{"dataset": "d", "model": "m", "only": ["x"]}]}, "unknown keys"),
        ({"analyze": [{"dataset": "d", "model": "m", "protocol": "fast"}]}, "protocol"),
    ):
        with pytest.raises(UserError, match=message):
            parse_batch(bad)
    # every structural problem at once, each naming its entry
    with pytest.raises(UserError) as info:
        parse_batch(
            {
                "executor": "slurm",
                "bogus": {},
                "import": [{"name": "x"}, {"format": "folder"}],
                "run": [{"dataset": "d", "model": "m", "top_k": 0}, {"dataset": "d", "model": "m"}],
                "analyze": [{"dataset": "d", "model": "m", "protocol": "fast"}],
            }
        )
    msg = str(info.value)
    assert msg.startswith("batch file: 6 problems:\n")
    for part in (
        "unknown tables ['bogus']",
        "[[import]] 'x' needs a `format`",
        "[[import]] #2 needs a `name`",
        "[[run]] #1: top_k must be a positive integer",
        "[[analyze]] #1: protocol must be",
        'executor must be "local" or "dask"',
    ):
        assert part in msg, part
    assert "[[run]] #2" not in msg  # the good entry is not a problem


def test_local_executor_refuses_a_scheduler_and_unknown_executors(tmp_path):
    store = Store(tmp_path / "unitscope.duckdb")
    with pytest.raises(UserError, match="needs --executor dask"):
        run_tasks([], store, executor="local", scheduler="tcp://x:1")
    with pytest.raises(UserError, match="unknown executor"):
        run_tasks([], store, executor="slurm")


# ---------------------------------------------------------------------------------------------- scope
def test_scope_filters_follow_the_schema():
    t = schema.TABLES_BY_NAME
    assert scope_filter(t["matches"], "d", ["a", "b"]) == ('"dataset" = ? AND "model" IN (?, ?)', ["d", "a", "b"])
    where, params = scope_filter(t["model_comparisons"], "d", ["a"])
    assert "model_a" in where and "model_b" in where and params == ["d", "a", "a"]
    assert scope_filter(t["responses"], "d", ["a"]) is None  # a task never writes the dataset's own rows
    assert scope_filter(t["models"], "d", ["a"]) is None
    assert snapshot_filter(t["responses"], "d", ["a"]) == ('"dataset" = ?', ["d"])
    assert snapshot_filter(t["layers"], "d", ["a"]) == ("TRUE", [])
    names = {x.name for x in scope_tables()}
    assert {"matches", "unit_activations", "match_runs", "scores", "model_comparisons", "decoding"} <= names
    assert not names & {"build_info", "datasets", "stimuli", "responses", "models", "layers"}


def test_scope_filter_selects_exactly_the_scope_rows():
    con = duckdb.connect()
    schema.create_all(con)
    for d, m in (("d", "a"), ("d", "b"), ("e", "a")):
        con.execute("INSERT INTO site_scores VALUES (?, ?, 's', 'x', 1.0)", [d, m])
    where, params = scope_filter(schema.TABLES_BY_NAME["site_scores"], "d", ["a"])
    assert con.execute(f"SELECT dataset, model FROM site_scores WHERE {where}", params).fetchall() == [("d", "a")]


# ---------------------------------------------------------------------------------------------- hashing
@pytest.fixture()
def con():
    con = duckdb.connect()
    schema.create_all(con)
    con.execute(
        "INSERT INTO datasets (dataset, synthetic, created_at, n_stimuli) VALUES "
        "('d', true, TIMESTAMP '2026-01-01 10:00:00', 10)"
    )
    con.execute(
        "INSERT INTO models (model, kind, sha256, created_at) VALUES "
        "('m', 'onnx', 'abc', TIMESTAMP '2026-01-01 11:00:00')"
    )
    con.execute(
        "INSERT INTO match_runs (dataset, model, top_k, created_at) VALUES "
        "('d', 'm', 5, TIMESTAMP '2026-01-01 12:00:00')"
    )
    return con


def test_input_hash_changes_with_what_the_result_derives_from(con):
    match = build_tasks(_runs(("d", "m")), [])[0]
    analysis = build_tasks([], [AnalyzeSpec("d", "m", ("runnerups",))])[0]
    h_match, h_an = input_hash(con, match, ["m"]), input_hash(con, analysis, ["m"])
    assert len(h_match) == 64 and h_match != h_an
    assert input_hash(con, match, ["m"]) == h_match  # deterministic
    assert input_hash(con, build_tasks([RunSpec("d", "m", top_k=6)], [])[0], ["m"]) != h_match
    assert (
        input_hash(con, build_tasks([RunSpec("d", "m", top_k=5, memory_gb=3, force=True)], [])[0], ["m"]) == h_match
    )  # memory and force do not change results
    assert input_hash(con, build_tasks([], [AnalyzeSpec("d", "m", ("runnerups",), seed=1)])[0], ["m"]) != h_an
    con.execute("UPDATE match_runs SET created_at = TIMESTAMP '2026-02-01 00:00:00'")  # re-matched
    assert input_hash(con, match, ["m"]) == h_match and input_hash(con, analysis, ["m"]) != h_an
    con.execute("UPDATE models SET sha256 = 'def'")  # another ONNX file under the same name
    assert input_hash(con, match, ["m"]) != h_match
    h2 = input_hash(con, match, ["m"])
    con.execute("UPDATE datasets SET created_at = TIMESTAMP '2026-03-01 00:00:00'")  # re-imported
    assert input_hash(con, match, ["m"]) != h2


def test_input_hash_of_cross_dataset_follows_the_dataset_of_selection(con):
    from precompute.cluster.tasks import Task

    task = build_tasks([], [AnalyzeSpec("x", "m", ("cross_dataset",), select_on="d")])[0]
    other = Task(task.task_id, task.kind, task.dataset, task.model, (), {**task.params, "options": {"select_on": "e"}})
    h = input_hash(con, task, ["m"])
    assert h != input_hash(con, other, ["m"])
    con.execute("UPDATE match_runs SET created_at = TIMESTAMP '2026-02-01 12:00:00' WHERE dataset = 'd'")
    assert input_hash(con, task, ["m"]) != h  # the selection dataset re-matched: the result is stale


def test_file_slug_is_safe_and_unique():
    a, b = file_slug("match:d/x:m y"), file_slug("match:d_x:m_y")
    assert a != b and "/" not in a and ":" not in a and " " not in a


# ---------------------------------------------------------------------------------------------- result files
def _result(folder, **fields):
    folder.mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"12345")
    return results.write_manifest(folder, ["a.bin"], **fields)


def test_a_result_is_complete_only_with_a_matching_manifest(tmp_path):
    folder = tmp_path / "r"
    _result(folder, input_hash="h1", task_id="t")
    assert results.read_complete(folder, input_hash="h1")["task_id"] == "t"
    assert results.read_complete(folder, input_hash="h2") is None  # computed from other inputs
    (folder / "a.bin").write_bytes(b"1234")  # truncated after the manifest
    assert results.read_complete(folder) is None
    (folder / "a.bin").write_bytes(b"12346")  # same size, other content
    assert results.read_complete(folder) is None
    (folder / "a.bin").write_bytes(b"12345")
    assert results.read_complete(folder) is not None
    (folder / results.MANIFEST).write_text('{"format": 1, "files": {"a.bin": ')  # a torn manifest
    assert results.read_complete(folder) is None
    (folder / results.MANIFEST).unlink()
    assert results.read_complete(folder) is None
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]  # no temporary files left


def test_find_complete_skips_incomplete_attempts(tmp_path):
    slug = file_slug("match:d:m")
    first = results.new_attempt(tmp_path, slug)  # a worker killed before its manifest
    (first / "a.bin").write_bytes(b"x")
    assert results.find_complete(tmp_path, slug, "h") is None
    second = results.new_attempt(tmp_path, slug)
    second.rmdir()
    _result(second, input_hash="h")
    assert results.find_complete(tmp_path, slug, "h")[0] == second
    assert results.find_complete(tmp_path, slug, "other") is None


def test_write_query_parquet_round_trips_every_type(tmp_path):
    con = duckdb.connect()
    schema.create_all(con)
    con.execute("INSERT INTO unit_activations VALUES ('d', 'm', 0, 1, 2, 3, 'topk', [0.5, -1.25])")
    n = results.write_query_parquet(
        con, "SELECT * FROM unit_activations WHERE dataset = ?", ["d"], tmp_path / "u.parquet"
    )
    assert n == 1
    assert (
        con.execute("SELECT * FROM read_parquet(?)", [str(tmp_path / "u.parquet")]).fetchall()
        == con.execute("SELECT * FROM unit_activations").fetchall()
    )


# ---------------------------------------------------------------------------------------------- build_info, ingest
def test_build_info_changes_merge_objects_and_skip_step_keys():
    before = {"seeds": json.dumps({"a": 1}), "steps_done": "[]", "x": "1"}
    after = {
        "seeds": json.dumps({"a": 1, "b": 2}),
        "steps_done": '["s"]',
        "step:s": "{}",
        "x": "2",
        "packages": "{}",
        "analysis_inputs": json.dumps({"s": ["t"]}),
    }
    assert build_info_changes(before, after) == {
        "seeds": {"merge": {"b": 2}},
        "x": {"set": "2"},
        "analysis_inputs": {"merge": {"s": ["t"]}},
    }


def _site_score_result(folder, con_rows, input_hash="h"):
    folder.mkdir(parents=True)
    con = duckdb.connect()
    schema.create_all(con)
    con.executemany("INSERT INTO site_scores VALUES (?, ?, ?, ?, ?)", con_rows)
    results.write_query_parquet(con, "SELECT * FROM site_scores", [], folder / "site_scores.parquet")
    results.write_json(folder / "build_info.json", {"seeds": {"merge": {"analyze:x:d:a": 0}}})
    return results.write_manifest(
        folder,
        ["site_scores.parquet", "build_info.json"],
        task_id="analyze:x:d:a",
        input_hash=input_hash,
        dataset="d",
        models=["a"],
        tables=["site_scores"],
    )


def test_ingest_replaces_only_the_scope_in_one_step(tmp_path):
    store = Store(tmp_path / "db" / "unitscope.duckdb")
    with store.step("setup") as con:
        con.executemany(
            "INSERT INTO site_scores VALUES (?, ?, ?, ?, ?)",
            [("d", "a", "s1", "old", 1.0), ("d", "b", "s1", "old", 2.0), ("e", "a", "s1", "old", 3.0)],
        )
    manifest = _site_score_result(tmp_path / "res", [("d", "a", "s1", "new", 9.0), ("d", "a", "s2", "new", 8.0)])
    ingest(store, tmp_path / "res", manifest)
    served = duckdb.connect(str(store.served_path), read_only=True)
    try:
        rows = served.execute("SELECT dataset, model, site_id, metric, value FROM site_scores ORDER BY ALL").fetchall()
        info = dict(served.execute("SELECT key, value FROM build_info").fetchall())
    finally:
        served.close()
    assert rows == [
        ("d", "a", "s1", "new", 9.0),
        ("d", "a", "s2", "new", 8.0),
        ("d", "b", "s1", "old", 2.0),
        ("e", "a", "s1", "old", 3.0),
    ]
    assert "analyze:x:d:a" in json.loads(info["steps_done"])
    assert json.loads(info[INGESTED_KEY]) == {"analyze:x:d:a": "h"}
    assert json.loads(info["seeds"]) == {"analyze:x:d:a": 0}


def test_a_failing_ingest_leaves_the_database_as_it_was(tmp_path):
    store = Store(tmp_path / "db" / "unitscope.duckdb")
    with store.step("setup") as con:
        con.execute("INSERT INTO site_scores VALUES ('d', 'a', 's1', 'old', 1.0)")
    manifest = _site_score_result(tmp_path / "res", [("d", "a", "s1", "new", 9.0)])
    (tmp_path / "res" / "site_scores.parquet").write_bytes(b"not parquet")
    with pytest.raises(duckdb.Error):
        ingest(store, tmp_path / "res", manifest)
    with store.connect() as con:
        assert con.execute("SELECT metric FROM site_scores").fetchall() == [("old",)]


def test_progress_prints_done_total_and_an_eta():
    lines: list[str] = []
    p = Progress(4, lines.append)
    p.update(TaskOutcome("a", "skipped"))
    p.update(TaskOutcome("b", "ran", compute_s=1.0, worker="w:1"))
    assert lines[0].startswith("[1/4] a: already done") and "ETA ?" in lines[0]
    assert lines[1].startswith("[2/4] b: done (compute 1.0 s on w:1") and "ETA 0:00:0" in lines[1]
