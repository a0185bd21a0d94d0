"""Batch files: the check a real run makes first and `batch --dry-run` makes alone (every problem listed,
nothing written), exclude_sites paths relative to the batch file, and the local executor going on past a
failing task (its dependents blocked, exit status 1)."""

from __future__ import annotations

import hashlib
import logging
import shutil

import numpy as np
import pytest

from precompute.analyses import registry
from precompute.analyses.registry import Analysis
from precompute.cli.main import main
from precompute.core.errors import UserError
from precompute.core.store import Store
from precompute.datasets.importers.selection import read_exclude
from precompute.jobs.batch import check_batch, execute_batch, run_batch
from precompute.jobs.batch_file import load_batch, parse_batch
from tests.unit.test_import_folder import make_folder


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _files(store: Store) -> dict:
    return {p: _digest(p) for p in (store.served_path, store.working_path)}


@pytest.fixture
def results_db(store: Store, _templates) -> Store:
    """Dataset "mini" with the toy models "toy" and "toy2" matched on it."""
    store.served_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_templates["results"], store.served_path)
    return store


def _names(store: Store, table: str, column: str) -> list[str]:
    with store.connect() as con:
        return sorted(v for (v,) in con.execute(f'SELECT "{column}" FROM "{table}"').fetchall())


# ---------------------------------------------------------------------------------------------- the check
BAD = """
[[import]]
name = "lab"
format = "folder"
path = "recordings/lab"
variaton = "6"

[[model]]
name = "mine"
onnx = "models/mine.onnx"

[[run]]
datasets = ["mini", "mini-x"]
models = ["toy", "mine", "resnet-5O"]

[[analyze]]
dataset = "mini"
model = "toy"
analyses = ["cross_dataset"]
select_on = "hvm-a"
"""


def test_dry_run_lists_every_problem_in_one_message_and_writes_nothing(results_db, tmp_path, capsys):
    path = tmp_path / "lab.toml"
    path.write_text(BAD)
    before = _files(results_db)
    assert main(["--db", str(results_db.served_path), "batch", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "6 problem(s)" in err and "nothing was imported, added or run" in err
    assert "[[import]] 'lab': unknown option `variaton` (did you mean `variation`?)" in err
    assert f"[[import]] 'lab': `path` {tmp_path / 'recordings' / 'lab'} does not exist" in err
    assert f"[[model]] 'mine': `onnx` {tmp_path / 'models' / 'mine.onnx'} does not exist" in err
    assert "dataset 'mini-x' (named by [[run]]) is neither in the database nor imported" in err
    assert "known datasets: lab (this batch), mini" in err
    assert "dataset 'hvm-a' (named by [[analyze]] select_on)" in err
    assert "model 'resnet-5O' (named by [[run]])" in err and "known models: mine (this batch), toy, toy2" in err
    assert "--dry-run` checks it again" in err
    assert "usage:" not in err  # argparse's usage is not printed inside a batch
    assert _files(results_db) == before


def test_dry_run_of_a_good_file_lists_the_tasks_and_creates_no_database(tmp_path, capsys):
    db = tmp_path / "new" / "unitscope.duckdb"
    make_folder(tmp_path / "recordings", np.random.default_rng(0))
    (tmp_path / "ok.toml").write_text(
        '[[import]]\nname = "lab"\nformat = "folder"\npath = "recordings"\n\n'
        '[[model]]\nname = "px"\ncontrol = "pixels"\ninput_size = 8\n\n'
        '[[run]]\ndataset = "lab"\nmodel = "px"\n'
    )
    assert main(["--db", str(db), "batch", str(tmp_path / "ok.toml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "import lab (folder)" in out and "task   match:lab:px" in out
    assert not db.parent.exists() or not any(db.parent.iterdir())


def test_option_values_are_checked_as_their_requests_take_them(results_db, tmp_path, capsys):
    batch = parse_batch(
        {
            "import": [
                {"name": "a", "format": "hvm", "path": "x.hdf5"},
                {"name": "b", "format": "brainio", "time_bin": "late"},
            ],
            "model": [
                {"name": "m", "zoo": "resnet50", "input_size": 8},
                {"name": "r", "control": "random", "reference": "nope"},
                {"name": "z", "control": "pixels", "layout": "nchw", "seed": "x"},
                {"name": "n", "zoo": "resnet5O"},
            ],
        },
        tmp_path,
    )
    with pytest.raises(UserError) as info:
        check_batch(batch, results_db)
    msg = str(info.value)
    assert "[[import]] 'a': `format` is 'hvm', not one of brainio, hvm-hdf5, folder" in msg
    assert "[[import]] 'b': " in msg and "late" in msg  # the time bin does not parse
    assert "--format brainio needs --assembly and --stimuli and --images" in msg
    assert "[[model]] 'm': --input-size do(es) not apply to --zoo" in msg
    assert "[[model]] 'r': its reference model 'nope' is neither in the database" in msg
    assert "[[model]] 'z': `seed` must be an integer, not 'x'" in msg
    assert "[[model]] 'n': the zoo has no model 'resnet5O'; close names: resnet50" in msg
    assert "usage:" not in capsys.readouterr().err


def test_existing_entries_are_skipped_so_their_files_are_not_needed(results_db, tmp_path):
    entry = {"name": "mini", "format": "folder", "path": "gone"}
    check_batch(parse_batch({"import": [entry]}, tmp_path), results_db)  # skipped: mini exists
    with pytest.raises(UserError, match=r"`path` .*gone does not exist"):
        check_batch(parse_batch({"import": [{**entry, "replace": True}]}, tmp_path), results_db)
    # a model added earlier in the batch may be a random control's reference and be run
    batch = parse_batch(
        {
            "model": [
                {"name": "px", "control": "pixels", "input_size": 8},
                {"name": "rnd", "control": "random", "reference": "px"},
            ],
            "run": [{"dataset": "mini", "models": ["px", "rnd"]}],
        },
        tmp_path,
    )
    assert [t.task_id for t in check_batch(batch, results_db)] == ["match:mini:px", "match:mini:rnd"]


def test_a_bad_second_import_imports_nothing(store, tmp_path):
    for name in ("a", "b"):
        make_folder(tmp_path / name, np.random.default_rng(1))
    good = '[[import]]\nname = "a"\nformat = "folder"\npath = "a"\n\n'
    path = tmp_path / "two.toml"
    path.write_text(good + '[[import]]\nname = "b"\nformat = "folder"\npath = "b"\nregion_s = "V4"\n')
    with pytest.raises(UserError, match="unknown option `region_s`"):
        execute_batch(load_batch(path), store, report=lambda _: None)
    assert not store.served_path.exists() or _names(store, "datasets", "dataset") == []
    path.write_text(good)  # the same first entry alone imports
    assert run_batch(load_batch(path), store, report=lambda _: None) == 0
    assert _names(store, "datasets", "dataset") == ["a"]


def test_a_run_naming_an_unknown_dataset_rematches_nothing(results_db, tmp_path):
    path = tmp_path / "b.toml"
    path.write_text('[[run]]\ndatasets = ["mini", "hvm-x"]\nmodel = "toy"\nforce = true\n')
    before = _files(results_db)
    with pytest.raises(UserError, match="dataset 'hvm-x'"):
        run_batch(load_batch(path), results_db, report=lambda _: None)
    assert _files(results_db) == before


# ---------------------------------------------------------------------------------------------- paths
def test_exclude_sites_files_are_relative_to_the_batch_file_and_globs_stay(tmp_path, monkeypatch):
    (tmp_path / "ids.txt").write_text("V4-001\n# a comment\nIT-002\n")
    (tmp_path / "more").write_text("IT-003\n")
    entry = {
        "name": "x",
        "format": "folder",
        "path": "rec",
        "exclude_sites": ["V4-00*", "Tito_L_P_*", "ids.txt", "more", "lists/later.csv", "V4-010"],
    }
    got = parse_batch({"import": [entry]}, tmp_path).imports[0]
    assert got["path"] == str(tmp_path / "rec")
    assert got["exclude_sites"] == [
        "V4-00*",
        "Tito_L_P_*",
        str(tmp_path / "ids.txt"),
        str(tmp_path / "more"),
        str(tmp_path / "lists" / "later.csv"),
        "V4-010",
    ]
    single = parse_batch({"import": [{**entry, "exclude_sites": "ids.txt"}]}, tmp_path).imports[0]
    assert single["exclude_sites"] == str(tmp_path / "ids.txt")
    monkeypatch.chdir(tmp_path / "..")  # read from anywhere, the files are found
    assert read_exclude(got["exclude_sites"][:4]) == ("V4-00*", "Tito_L_P_*", "V4-001", "IT-002", "IT-003")


def test_a_missing_exclude_sites_file_is_a_problem(results_db, tmp_path):
    make_folder(tmp_path / "rec", np.random.default_rng(2))
    batch = parse_batch(
        {"import": [{"name": "x", "format": "folder", "path": "rec", "exclude_sites": ["V4-00*", "lists/later.csv"]}]},
        tmp_path,
    )
    with pytest.raises(UserError, match=r"(?s)1 problem.*--exclude-sites '.*later.csv': no such file"):
        check_batch(batch, results_db)


# ---------------------------------------------------------------------------------------------- failures
def _boom(ctx) -> None:
    if ctx.model == "toy":
        raise RuntimeError("boom on toy")


def _fine(ctx) -> None:
    pass


@pytest.fixture
def failing_analyses(monkeypatch):
    """boom (raises on mini x toy), then fine, then a cross-model one: run in that order on each pair."""
    for a in (
        Analysis("boom", "raises on toy", _boom),
        Analysis("fine", "does nothing", _fine),
        Analysis("everyone", "cross-model", _fine, cross_model=True),
    ):
        monkeypatch.setitem(registry._REGISTRY, a.name, a)


def test_local_executor_goes_on_past_a_failing_task_and_blocks_its_dependents(
    results_db, tmp_path, failing_analyses, caplog
):
    path = tmp_path / "b.toml"
    path.write_text(
        '[[analyze]]\ndataset = "mini"\nmodels = ["toy", "toy2"]\nanalyses = ["boom", "fine", "everyone"]\n'
    )
    lines: list[str] = []
    with caplog.at_level(logging.ERROR, logger="precompute.cluster.executor"):
        code = run_batch(load_batch(path), results_db, report=lines.append)
    assert code == 1
    assert any("analyze:boom:mini:toy: FAILED: RuntimeError: boom on toy" in line for line in lines), lines
    assert any("analyze:fine:mini:toy: not run: analyze:boom:mini:toy failed" in line for line in lines)
    assert any("analyze:everyone:mini: not run" in line for line in lines)
    assert any(line.startswith("5 task(s)") and "2 ran, 1 failed, 2 blocked" in line for line in lines), lines
    assert "  analyze:boom:mini:toy: RuntimeError: boom on toy" in lines
    assert "task analyze:boom:mini:toy failed" in caplog.text
    with results_db.connect() as con:
        from precompute.core.store import steps_done

        done = set(steps_done(con))
    assert {"analyze:boom:mini:toy2", "analyze:fine:mini:toy2"} <= done
    assert not {"analyze:boom:mini:toy", "analyze:fine:mini:toy", "analyze:everyone:mini"} & done


def test_the_command_exits_1_when_a_task_fails(results_db, tmp_path, failing_analyses, capsys):
    path = tmp_path / "b.toml"
    path.write_text('[[analyze]]\ndataset = "mini"\nmodels = ["toy", "toy2"]\nanalyses = ["boom", "fine"]\n')
    assert main(["--db", str(results_db.served_path), "batch", str(path)]) == 1
    out = capsys.readouterr().out
    assert "2 ran, 1 failed, 1 blocked" in out


def test_a_keyboard_interrupt_still_stops_the_local_batch_at_once(results_db, tmp_path, monkeypatch):
    def interrupt(ctx):
        raise KeyboardInterrupt

    monkeypatch.setitem(registry._REGISTRY, "stop", Analysis("stop", "interrupts", interrupt))
    monkeypatch.setitem(registry._REGISTRY, "fine", Analysis("fine", "does nothing", _fine))
    batch = parse_batch({"analyze": [{"dataset": "mini", "models": ["toy", "toy2"], "analyses": ["stop", "fine"]}]})
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        execute_batch(batch, results_db, report=lines.append)
    assert lines == []  # nothing after the first task ran
