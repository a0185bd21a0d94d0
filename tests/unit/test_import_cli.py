"""`datasets import` end to end: writes through the writer; a refused import leaves the database as it was."""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pandas as pd
import pytest

from precompute.cli.main import main
from precompute.core.errors import UserError
from precompute.datasets.importers.selection import Selection, build_selection, parse_time_bin, read_exclude
from tests.unit.test_import_folder import make_folder


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_import_refusal_replace(tmp_path, capsys):
    rng = np.random.default_rng(13)
    db = tmp_path / "data" / "unitscope.duckdb"
    work = db.with_name("unitscope.work.duckdb")
    make_folder(tmp_path / "d", rng, "trials.csv")
    args = ["--db", str(db), "datasets", "import", "--name", "lab", "--format", "folder", "--path", str(tmp_path / "d")]
    assert main(args) == 0
    assert "12 stimuli, 4 sites" in capsys.readouterr().out
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT source, n_stimuli, n_sites FROM datasets WHERE dataset='lab'").fetchone() == (
        "folder",
        12,
        4,
    )
    assert con.execute("SELECT count(*) FROM trials WHERE dataset='lab'").fetchone()[0] > 0
    assert con.execute("SELECT count(*) FROM sites WHERE dataset='lab' AND reliability IS NOT NULL").fetchone()[0] == 4
    con.close()
    before = (_digest(db), _digest(work))

    # every refusal leaves the database exactly as it was
    assert main(args) == 2  # existing name without --replace
    assert "--replace" in capsys.readouterr().err
    bad = tmp_path / "bad"
    make_folder(bad, rng, "responses.npy")
    pd.DataFrame({"site_id": ["x", "x"], "region": ["V4", None]}).to_csv(bad / "sites.csv", index=False)
    assert main([*args[:5], "bad", "--format", "folder", "--path", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "import refused" in err and "duplicate site ids" in err
    assert (_digest(db), _digest(work)) == before

    # --replace overwrites
    assert main([*args, "--replace"]) == 0
    assert _digest(db) != before[0]


def test_replace_with_selection_writes_the_selection(tmp_path):
    rng = np.random.default_rng(14)
    db = tmp_path / "x.duckdb"
    make_folder(tmp_path / "d", rng, "responses.npy", n_stim=24)
    base = ["--db", str(db), "datasets", "import", "--name", "lab", "--format", "folder", "--path", str(tmp_path / "d")]
    assert main(base) == 0
    assert main([*base, "--replace", "--variation", "6", "--title", "V6 only"]) == 0
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT n_stimuli, title FROM datasets WHERE dataset='lab'").fetchone() == (12, "V6 only")
    assert con.execute("SELECT count(*) FROM responses WHERE dataset='lab'").fetchone()[0] == 12 * 4
    con.close()


def test_missing_format_options(tmp_path, capsys):
    assert main(["--db", str(tmp_path / "x.duckdb"), "datasets", "import", "--name", "a", "--format", "brainio"]) == 2
    assert "--assembly and --stimuli and --images" in capsys.readouterr().err


# ---------------------------------------------------------------------------- selection parsing
def test_selection_parsing(tmp_path):
    assert parse_time_bin("70-170") == (70.0, 170.0)
    with pytest.raises(UserError):
        parse_time_bin("170-70")
    f = tmp_path / "ids.txt"
    f.write_text("a\n\n# comment\nb  # trailing\n")
    assert read_exclude([str(f), "Tito_*"]) == ("a", "b", "Tito_*")
    # a mistyped file is refused, not taken as a glob that matches nothing
    for typo in (str(tmp_path / "idz.txt"), "bad_ids.csv", "lists/ids"):
        with pytest.raises(UserError, match="no such file"):
            read_exclude([typo])
    assert read_exclude(["V4-00*", "IT-012"]) == ("V4-00*", "IT-012")
    sel = build_selection(preset="majajhong2015", variation="V3,0", region="IT")
    assert sel.variations == frozenset({0, 3}) and sel.time_bin == (70.0, 170.0) and sel.regions == {"IT"}
    assert sel.exclude_sites == ("Tito_L_P_*",)
    assert build_selection() == Selection()
    with pytest.raises(UserError, match="known presets"):
        build_selection(preset="nope")
    with pytest.raises(UserError):
        build_selection(variation="six")


def test_brainio_import_end_to_end(tmp_path):
    from tests.unit.test_import_support import hvm_rows, majajhong_sites, write_assembly, write_stimulus_set

    rng = np.random.default_rng(15)
    rows = hvm_rows({3: 4, 6: 10})
    csv, zpath = write_stimulus_set(tmp_path, rows, rng=rng)
    ids = rows["image_id"].tolist()
    write_assembly(tmp_path / "a.nc", majajhong_sites(3, 2, 4), ids, dict.fromkeys(ids, 3), rng=rng)
    db = tmp_path / "x.duckdb"
    assert (
        main(
            [
                "--db",
                str(db),
                "datasets",
                "import",
                "--name",
                "mh",
                "--format",
                "brainio",
                "--assembly",
                str(tmp_path / "a.nc"),
                "--stimuli",
                str(csv),
                "--images",
                str(zpath),
                "--preset",
                "majajhong2015",
            ]
        )
        == 0
    )
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT n_stimuli, n_sites, n_repetitions FROM datasets").fetchone() == (10, 7, 3)
    assert con.execute("SELECT count(*) FROM sites WHERE site_id LIKE 'Tito_L_P_%'").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM trials").fetchone()[0] == 7 * 10 * 3
    assert con.execute("SELECT count(*) FROM stimulus_images WHERE octet_length(png) > 0").fetchone()[0] == 10
    con.close()
