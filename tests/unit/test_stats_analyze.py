"""The `analyze` command and every registered statistic on a miniature database with planted sites.

The database: `mini_tables(60 stimuli)` with V4-000 a copy of toy unit (1, 2, 1, 0) (affine), V4-001
the same unit plus a little noise (so two sites share a best unit), IT-004 a copy of unit (2, 5, 0, 0),
IT-007 given a low reliability, the other sites pure noise; toy models `toy` (the copied units) and
`toy2` (other random activations) with brute-force match tables (tests/support/factories.py).
"""

from __future__ import annotations

import argparse

import duckdb
import numpy as np
import pandas as pd
import pytest

from precompute.analyses.context import AnalysisContext
from precompute.cli import analyze as analyze_cli
from precompute.core.errors import UserError
from precompute.core.store import Store, read_steps_done
from precompute.datasets.writer import write_dataset
from precompute.jobs import demo
from precompute.jobs.analyze import run_analyses
from precompute.statistics.ceiling import LOW_RELIABILITY_THRESHOLD
from tests.support.factories import TOY_LAYERS, mini_tables, toy_activations, write_toy_results

N_STIMULI = 60
SIZES = [c * h * w for _, c, h, w in TOY_LAYERS]
OFFSETS = np.concatenate([[0], np.cumsum(SIZES)])


def planted_tables():
    t = mini_tables(n_stimuli=N_STIMULI)
    acts = toy_activations(N_STIMULI, seed=0)
    rng = np.random.default_rng(42)
    resp = t.responses.copy()
    resp[0] = acts[1][:, 2, 1, 0] * 3 + 5
    resp[1] = acts[1][:, 2, 1, 0] + 0.05 * rng.normal(size=N_STIMULI)
    resp[4] = acts[2][:, 5, 0, 0] * 2 + 1
    t.responses = resp.astype(np.float32)
    t.sites.loc[t.sites["site_id"] == "IT-007", "reliability"] = 0.2
    return t


def build(store: Store, models=("toy", "toy2")) -> dict[str, np.ndarray]:
    tables = planted_tables()
    write_dataset(store, "mini", tables)
    return {m: write_toy_results(store, model=m, seed=i, tables=tables) for i, m in enumerate(models)}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """(read-only connection to the served file, r matrices) after every analysis ran once."""
    store = Store(tmp_path_factory.mktemp("stats") / "data" / "unitscope.duckdb")
    r = build(store)
    run_analyses(store, "mini", ["toy", "toy2"])
    con = duckdb.connect(str(store.served_path), read_only=True)
    yield con, r, store
    con.close()


@pytest.fixture
def small(store):
    """A fresh planted database (for tests that change it)."""
    build(store)
    return store


def _sites(con) -> pd.DataFrame:
    return con.execute("SELECT site_id, idx, region, reliability FROM sites WHERE dataset = 'mini' ORDER BY idx").df()


def _scores(con, model, metric) -> pd.DataFrame:
    return (
        con.execute(
            "SELECT region, value, ci_low, ci_high FROM scores WHERE dataset = 'mini' AND model = ? "
            "AND metric = ? ORDER BY region",
            [model, metric],
        )
        .df()
        .set_index("region")
    )


def _site_scores(con, model, metric) -> pd.Series:
    return (
        con.execute(
            "SELECT site_id, value FROM site_scores WHERE dataset = 'mini' AND model = ? AND metric = ?",
            [model, metric],
        )
        .df()
        .set_index("site_id")["value"]
    )


def _best_r(r: np.ndarray) -> np.ndarray:
    return np.nanmax(r, axis=1)


# ---------------------------------------------------------------------------------------------- statistics
def test_context_loads_activations_and_responses_aligned_by_id(planted):
    con, _, store = planted
    ctx = AnalysisContext(con=con, store=store, dataset="mini", model="toy")
    acts = toy_activations(N_STIMULI, seed=0)
    table = ctx.activations()
    assert len(table) > 0
    for (li, c, y, x), values in table.items():
        assert np.array_equal(values, acts[li][:, c, y, x])
    resp = ctx.responses()
    assert resp.shape == (9, N_STIMULI)
    assert np.allclose(resp[0], planted_tables().responses[0])
    assert ctx.best_matches()["site_id"].tolist() == _sites(con)["site_id"].tolist()


def test_neural_correlation_is_the_median_of_best_r_with_intervals_both_ways(planted):
    con, r, _ = planted
    sites = _sites(con)
    for model in ("toy", "toy2"):
        best = _best_r(r[model])
        over_sites = _scores(con, model, "neural_correlation")
        over_stimuli = _scores(con, model, "neural_correlation_stimuli")
        for region in ("V4", "IT"):
            expected = np.median(best[(sites["region"] == region).to_numpy()])
            row = over_sites.loc[region]
            assert row.value == pytest.approx(expected, abs=1e-5)
            assert row.ci_low <= row.value <= row.ci_high and row.ci_low < row.ci_high
            srow = over_stimuli.loc[region]
            assert srow.value == pytest.approx(expected, abs=1e-5)
            assert srow.ci_low <= srow.value <= srow.ci_high


def test_layer_scores_and_best_layer_equal_brute_force(planted):
    con, r, _ = planted
    sites = _sites(con)
    layer = con.execute(
        "SELECT region, layer_idx, value, ci_low, ci_high FROM layer_scores WHERE dataset = 'mini' "
        "AND model = 'toy' AND metric = 'neural_correlation'"
    ).df()
    for region in ("V4", "IT"):
        mask = (sites["region"] == region).to_numpy()
        expected = [np.median(np.nanmax(r["toy"][mask, OFFSETS[i] : OFFSETS[i + 1]], axis=1)) for i in range(3)]
        got = layer[layer["region"] == region].sort_values("layer_idx")
        assert got["layer_idx"].tolist() == [0, 1, 2]
        assert np.allclose(got["value"], expected, atol=1e-5)
        assert (got["ci_low"] <= got["value"]).all() and (got["value"] <= got["ci_high"]).all()
        best = _scores(con, "toy", "best_layer").loc[region]
        assert best.value == int(np.argmax(expected))
        assert _scores(con, "toy", "best_layer_score").loc[region].value == pytest.approx(max(expected), abs=1e-5)
        # Figure S8: one layer can never beat the whole model
        assert max(expected) <= _scores(con, "toy", "neural_correlation").loc[region].value + 1e-6


def test_noise_ceiling_flags_low_reliability_sites_without_dropping_them(planted):
    con, r, _ = planted
    sites = _sites(con)
    flags = _site_scores(con, "toy", "low_reliability")
    assert set(flags.index) == set(sites["site_id"])
    assert flags["IT-007"] == 1.0 and flags.drop("IT-007").eq(0.0).all()
    assert (sites.set_index("site_id")["reliability"].drop("IT-007") >= LOW_RELIABILITY_THRESHOLD).all()
    assert _scores(con, "toy", "low_reliability_sites").loc["IT"].value == 1.0
    best = _best_r(r["toy"])
    for region in ("V4", "IT"):
        mask = (sites["region"] == region).to_numpy()
        consistency = np.median(sites["reliability"][mask])
        assert _scores(con, "toy", "consistency").loc[region].value == pytest.approx(consistency)
        # the ceiled scores ceil held-out r only, never the in-sample maximum (which can exceed 1 ceiled)
        n2n = _site_scores(con, "toy", "heldout_n2n").reindex(sites["site_id"][mask])
        keep = n2n.notna().to_numpy()
        m = np.median(n2n[keep])
        row = _scores(con, "toy", "brainscore_ceiled").loc[region]
        assert row.value == pytest.approx(np.sign(m) * m * m / np.median(sites["reliability"][mask][keep]), abs=1e-9)
        assert row.value != pytest.approx(np.median(best[mask]) / consistency, abs=1e-3)
        assert row.ci_low <= row.value <= row.ci_high
    held = _site_scores(con, "toy", "heldout_split_half")
    ceiled = _site_scores(con, "toy", "heldout_ceiled")
    rel = sites.set_index("site_id")["reliability"]
    np.testing.assert_allclose(ceiled, (held / np.sqrt(rel)).loc[ceiled.index], atol=1e-12)


def test_one_to_one_planted_copies_and_shared_best_unit(planted):
    con, r, _ = planted
    o2o = _site_scores(con, "toy", "one_to_one")
    rank = _site_scores(con, "toy", "one_to_one_rank")
    assert o2o["IT-004"] > 0.9999 and rank["IT-004"] == 1  # the copy is assigned its unit
    assert max(o2o["V4-000"], o2o["V4-001"]) > 0.99  # one of the two copies keeps the shared unit ...
    assert sorted([rank["V4-000"], rank["V4-001"]])[1] > 1  # ... the other one has to move
    assert _scores(con, "toy", "shared_best_units").loc["V4"].value == 2
    assert _scores(con, "toy", "shared_best_units").loc["IT"].value == 0
    # a pure-noise site's score is unremarkable: below its (in-sample, selected) best and far from the copies
    for site in ("V4-002", "V4-003", "IT-005", "IT-006"):
        assert o2o[site] < 0.6
    # the exact float64 r of the assigned pair is never above the site's best r
    best = pd.Series(_best_r(r["toy"]), index=_sites(con)["site_id"])
    assert (o2o <= best.loc[o2o.index] + 1e-6).all()
    # each unit serves at most one site: the assigned r's are the Hungarian optimum, the median is stored
    v4 = _sites(con).query("region == 'V4'")["site_id"]
    assert _scores(con, "toy", "one_to_one").loc["V4"].value == pytest.approx(np.median(o2o.loc[v4]))


def test_one_to_one_matches_exhaustive_search_over_the_candidates(planted):
    from itertools import permutations

    con, r, _ = planted
    sites = _sites(con)
    v4_rows = np.flatnonzero((sites["region"] == "V4").to_numpy())
    # An optimal assignment of S sites gives each site one of its own top-S units (a worse one could be
    # swapped for a free better one), so exhaustive search over those is exact and fast.
    cand = con.execute(
        "SELECT DISTINCT layer_idx, channel, y, x FROM matches m JOIN sites s USING (dataset, site_id) "
        "WHERE m.dataset = 'mini' AND model = 'toy' AND region = 'V4' AND rank <= ?",
        [len(v4_rows)],
    ).fetchall()
    flat = []
    for li, c, y, x in cand:
        _, _, h, w = TOY_LAYERS[li]
        flat.append(OFFSETS[li] + c * h * w + y * w + x)
    sub = r["toy"][np.ix_(v4_rows, flat)]
    best_total = max(sub[np.arange(len(v4_rows)), list(p)].sum() for p in permutations(range(len(flat)), len(v4_rows)))
    got = _site_scores(con, "toy", "one_to_one").loc[sites["site_id"][v4_rows]].sum()
    assert got == pytest.approx(best_total, abs=1e-5)


def test_depth_is_the_normalised_depth_of_the_best_units_layer(planted):
    con, r, _ = planted
    sites = _sites(con)
    depth = _site_scores(con, "toy", "depth")
    best_layer = [int(np.searchsorted(OFFSETS, np.nanargmax(row), side="right") - 1) for row in r["toy"]]
    expected = pd.Series([li / 2 for li in best_layer], index=sites["site_id"])
    assert depth.loc[expected.index].tolist() == pytest.approx(expected.tolist())
    assert depth["IT-004"] == 1.0 and depth["V4-000"] == 0.5


def test_model_comparison_is_the_median_paired_difference(planted):
    con, r, _ = planted
    sites = _sites(con)
    rows = con.execute("SELECT * FROM model_comparisons WHERE dataset = 'mini'").df()
    assert len(rows) == 4 and set(rows["model_a"]) == {"toy"} and set(rows["model_b"]) == {"toy2"}
    assert set(rows["metric"]) == {"heldout_split_half", "neural_correlation"}  # held-out primary, in-sample too
    held = {m: _site_scores(con, m, "heldout_split_half").reindex(sites["site_id"]).to_numpy() for m in ("toy", "toy2")}
    diffs = {
        "neural_correlation": _best_r(r["toy"]) - _best_r(r["toy2"]),
        "heldout_split_half": held["toy"] - held["toy2"],
    }
    for (region, metric), row in rows.set_index(["region", "metric"]).iterrows():
        d = diffs[metric][(sites["region"] == region).to_numpy()]
        assert row["difference"] == pytest.approx(np.nanmedian(d), abs=1e-5)
        assert 0 < row["p_value"] <= row["p_holm"] <= 1 and row["ci_low"] <= row["ci_high"]
        assert "bootstrap" in row["test"] and "stimuli by object" in row["ci_scheme"]


def test_every_step_is_recorded_with_its_seed(planted):
    con, _, store = planted
    done = read_steps_done(store.served_path)
    for name in ("neural_correlation", "layer_scores", "noise_ceiling", "one_to_one", "depth"):
        for model in ("toy", "toy2"):
            assert f"analyze:{name}:mini:{model}" in done
    assert "analyze:model_comparison:mini" in done
    seeds = con.execute("SELECT value FROM build_info WHERE key = 'seeds'").fetchone()[0]
    assert '"analyze:one_to_one:mini:toy": 0' in seeds


# ---------------------------------------------------------------------------------------------- running
def test_unknown_analysis_names_the_valid_ones(small):
    with pytest.raises(UserError, match="valid names: neural_correlation, layer_scores"):
        run_analyses(small, "mini", ["toy"], ["neural_corelation"])


def test_unmatched_model_and_unknown_dataset_say_what_to_run(small):
    with pytest.raises(UserError, match=r"model 'nope' does not exist \(known: .*toy.*models add"):
        run_analyses(small, "mini", ["toy", "nope"])
    with small.step("add a model") as con:  # added, not matched
        con.execute("INSERT INTO models (model, kind) VALUES ('added', 'onnx')")
    with pytest.raises(UserError, match="python -m precompute run --dataset mini --model added"):
        run_analyses(small, "mini", ["toy", "added"])
    with pytest.raises(UserError, match="dataset 'other' does not exist"):
        run_analyses(small, "other", ["toy"])


def test_rerun_is_skipped_unless_forced_and_replaces_only_that_models_rows(small):
    run_analyses(small, "mini", ["toy", "toy2"], ["neural_correlation"])
    with small.step("tamper") as con:  # mark toy2's row so we can see it is left alone
        con.execute(
            "UPDATE scores SET value = -9 WHERE model = 'toy2' AND region = 'V4' AND metric = 'neural_correlation'"
        )
        con.execute(
            "UPDATE scores SET value = -9 WHERE model = 'toy' AND region = 'V4' AND metric = 'neural_correlation'"
        )
    assert run_analyses(small, "mini", ["toy"], ["neural_correlation"]) == [
        ("analyze:neural_correlation:mini:toy", False)
    ]
    assert run_analyses(small, "mini", ["toy"], ["neural_correlation"], force=True)[0][1]
    con = duckdb.connect(str(small.served_path), read_only=True)
    rows = con.execute("SELECT model, region, metric, value FROM scores WHERE dataset = 'mini'").df()
    con.close()
    assert len(rows) == 8  # 2 models x 2 regions x 2 metrics: nothing duplicated
    v4 = rows[(rows["region"] == "V4") & (rows["metric"] == "neural_correlation")].set_index("model")["value"]
    assert v4["toy2"] == -9 and v4["toy"] > 0


def test_cross_model_step_reruns_when_another_model_is_matched(small):
    assert run_analyses(small, "mini", ["toy"], ["model_comparison"])[0] == ("analyze:model_comparison:mini", True)
    assert not run_analyses(small, "mini", ["toy"], ["model_comparison"])[0][1]
    write_toy_results(small, model="toy3", seed=3, tables=planted_tables())
    assert run_analyses(small, "mini", ["toy"], ["model_comparison"])[0][1]
    con = duckdb.connect(str(small.served_path), read_only=True)
    pairs = con.execute("SELECT DISTINCT model_a, model_b FROM model_comparisons").fetchall()
    con.close()
    assert sorted(pairs) == [("toy", "toy2"), ("toy", "toy3"), ("toy2", "toy3")]


def test_a_rematched_model_is_analysed_again_without_force(small):
    assert run_analyses(small, "mini", ["toy"], ["depth"])[0][1]
    assert not run_analyses(small, "mini", ["toy"], ["depth"])[0][1]
    with small.step("rematch-stand-in") as con:
        con.execute("UPDATE match_runs SET created_at = TIMESTAMP '2030-01-01' WHERE model = 'toy'")
    assert run_analyses(small, "mini", ["toy"], ["depth"])[0][1]


def test_cli_runs_analyses_and_prints_each_step(small, capsys):
    parser = argparse.ArgumentParser()
    analyze_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["analyze", "--dataset", "mini", "--model", "toy", "--only", "depth", "--only", "one_to_one"]
    )
    assert args.func(args, small) == 0
    out = capsys.readouterr().out
    assert "analyze:one_to_one:mini:toy: done" in out and "analyze:depth:mini:toy: done" in out
    assert "neural_correlation" not in out
    with pytest.raises(SystemExit):
        parser.parse_args(["analyze", "--dataset", "mini", "--model", "toy", "--protocol", "nope"])


def test_paper_protocol_uses_more_resamples():
    paper = AnalysisContext(con=None, store=None, dataset="d", model="m", protocol="paper")
    default = AnalysisContext(con=None, store=None, dataset="d", model="m")
    assert paper.n_resamples == 10_000 and default.n_resamples == 1000


# ---------------------------------------------------------------------------------------------- demo
def test_demo_steps_follow_the_design_scope():
    quick = [s.name for s in demo.analysis_steps("quick")]
    assert quick and all(
        n.startswith("analyze:") and n.endswith(":synthetic-hvm-quick:efficientnet-lite0") for n in quick
    )
    # a first look: the analyses that take seconds, not those that run the model again
    assert "analyze:runnerups:synthetic-hvm-quick:efficientnet-lite0" in quick
    assert not any(f":{slow}:" in n for n in quick for slow in ("null", "rotations", "decoding", "receptive_fields"))
    names = [s.name for s in demo.analysis_steps("default")]
    assert len(names) == len(set(names))
    for model in ("efficientnet-lite0", "pixels", "random-efficientnet-lite0", "untrained-efficientnet-lite0"):
        assert f"analyze:one_to_one:synthetic-hvm:{model}" in names
    for model in ("efficientnet-lite1", "efficientnet-lite2"):
        # the cheap statistics on every model; the statistics pass (minutes) on Lite0 only
        assert f"analyze:neural_correlation:synthetic-hvm:{model}" in names
        assert f"analyze:one_to_one:synthetic-hvm:{model}" in names
        assert f"analyze:null:synthetic-hvm:{model}" not in names
        # held-out r over all units comes from the matching run's training sets: seconds, every model
        assert f"analyze:heldout_split_half:synthetic-hvm:{model}" in names
        assert f"analyze:crossval:synthetic-hvm:{model}" in names
    assert names[-1] == "analyze:model_comparison:synthetic-hvm"
    full = [s.name for s in demo.analysis_steps("full")]
    assert "analyze:null:synthetic-hvm:efficientnet-lite2" in full


def test_the_demo_builds_model_by_model_fast_steps_first():
    """Lite0 is matched and browsable before other models are exported; slow analyses after every model's
    fast steps; cross-model comparisons last."""
    from precompute.jobs.demo import demo_steps

    names = [s.name for s in demo_steps("default")]
    pos = {n: i for i, n in enumerate(names)}
    assert names[0] == "dataset:synthetic-hvm"
    assert pos["match:synthetic-hvm:efficientnet-lite0"] < pos["model:efficientnet-lite1"]
    assert pos["analyze:featuremaps:synthetic-hvm:efficientnet-lite0"] < pos["model:pixels"]
    last_match = max(i for n, i in pos.items() if n.startswith("match:"))
    assert pos["analyze:null:synthetic-hvm:efficientnet-lite0"] > last_match
    assert pos["analyze:decoding:synthetic-hvm:efficientnet-lite0"] > last_match
    assert names[-1] == "analyze:model_comparison:synthetic-hvm"
    for i, name in enumerate(names):  # every analysis after its model's matching
        parts = name.split(":")
        if parts[0] == "analyze" and len(parts) == 4:
            assert pos[f"match:{parts[2]}:{parts[3]}"] < i
