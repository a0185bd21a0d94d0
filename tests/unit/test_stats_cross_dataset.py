"""Select on one dataset, evaluate on another (analysis `cross_dataset`), against a float64 brute force.

Two tiny datasets share site ids: `mini-a` (stimuli stim000..stim059) and `mini-b` (stim060..stim099,
sites V4-000..IT-007 as in A and IT-108 only in B). One toy model `toy` whose activations over all 100
stimuli are known (a fake source looks them up by stimulus id) is matched by brute force on A (top-5) and
on B (top-2), so some of A's best units are already gathered on B and the others must be gathered.
Planted: V4-000 copies unit (1, 2, 1, 0) on both datasets (r ~ 1 on B); IT-004 copies unit (2, 5, 0, 0)
on A only (its B responses are noise).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from precompute.core.errors import UserError
from precompute.datasets.writer import write_dataset
from precompute.models.base import LayerInfo
from precompute.statistics import cross_dataset
from precompute.statistics.cross_dataset import cross_dataset_r, shared_site_ids
from tests.support.factories import TOY_LAYERS, mini_tables, toy_activations

N_A, N_B = 60, 40
SIZES = [c * h * w for _, c, h, w in TOY_LAYERS]
OFFSETS = np.concatenate([[0], np.cumsum(SIZES)])
ACTS = toy_activations(N_A + N_B, seed=0)  # stimulus k of the shared universe is "stim{k:03d}"


def unit_of(flat: int) -> tuple[int, int, int, int]:
    layer = int(np.searchsorted(OFFSETS, flat, side="right") - 1)
    _, c, h, w = TOY_LAYERS[layer]
    rem = flat - OFFSETS[layer]
    return layer, int(rem // (h * w)), int((rem // w) % h), int(rem % w)


def unit_matrix(stim: slice) -> np.ndarray:
    """(stimuli, units) float64 activations of every toy unit on the stimuli `stim`, flat unit order."""
    return np.concatenate([a[stim].reshape(a[stim].shape[0], -1) for a in ACTS], axis=1).astype(np.float64)


def brute_r(responses: np.ndarray, units: np.ndarray) -> np.ndarray:
    """(sites, units) float64 r, each site over its finite responses; NaN for units constant there."""
    out = np.full((len(responses), units.shape[1]), np.nan)
    for s, y in enumerate(responses):
        keep = np.isfinite(y)
        z = y[keep] - y[keep].mean()
        u = units[keep] - units[keep].mean(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s] = (z @ u) / (np.sqrt(z @ z) * np.sqrt((u * u).sum(0)))
        out[s, np.ptp(units[keep], axis=0) == 0] = np.nan
    return out


class FakeSource:
    """The toy model as an ActivationSource: activations looked up by stimulus id in ACTS."""

    def __init__(self):
        self.model = "toy"
        self.layers = [LayerInfo(i, n, c, h, w) for i, (n, c, h, w) in enumerate(TOY_LAYERS)]
        self.calls = 0

    def activations(self, images, stimulus_ids, layer_indices=None):
        self.calls += 1
        idx = [int(s.removeprefix("stim")) for s in stimulus_ids]
        wanted = range(len(self.layers)) if layer_indices is None else layer_indices
        return [ACTS[i][idx] for i in wanted]

    def close(self) -> None:
        pass


def make_tables(first: int, n: int, seed: int, site_rename: dict[str, str]):
    t = mini_tables(n_stimuli=n, seed=seed)
    ids = [f"stim{first + i:03d}" for i in range(n)]
    t.stimuli["stimulus_id"] = ids
    t.stimuli["filename"] = [f"{s}.png" for s in ids]
    t.sites["site_id"] = t.sites["site_id"].replace(site_rename)
    t.rf_maps["site_id"] = t.rf_maps["site_id"].replace(site_rename)
    return t


def write_matches(
    store, dataset: str, responses: np.ndarray, site_ids: list[str], stim: slice, top_k: int, first: bool
) -> np.ndarray:
    """Brute-force match tables of `toy` on `dataset` (what the runner writes); returns the r matrix."""
    r = brute_r(responses.astype(np.float64), unit_matrix(stim))
    matches, gathered = [], set()
    for s, site in enumerate(site_ids):
        vals = np.where(np.isnan(r[s]), -np.inf, r[s])
        order = np.lexsort((np.arange(len(vals)), -vals))[:top_k]
        for rank, flat in enumerate(order, 1):
            u = unit_of(int(flat))
            matches.append((dataset, "toy", site, rank, *u, float(r[s, flat])))
            gathered.add(u)
    activ = [
        (dataset, "toy", *u, "topk", ACTS[u[0]][stim, u[1], u[2], u[3]].astype(float).tolist())
        for u in sorted(gathered)
    ]
    with store.step(f"match:{dataset}:toy") as con:
        if first:
            con.execute(
                "INSERT INTO models (model, family, source, kind, input_size, in_channels, parameters, "
                "total_units, n_layers, layout, imagenet_top1) VALUES ('toy', 'toy', 'test', 'pretrained', "
                "32, 1, 1000, ?, ?, 'nchw', 50.0)",
                [int(OFFSETS[-1]), len(TOY_LAYERS)],
            )
            for li, (name, c, h, w) in enumerate(TOY_LAYERS):
                con.execute(
                    "INSERT INTO layers VALUES ('toy', ?, ?, 'Relu', ?, ?, ?, ?, ?, ?, NULL)",
                    [li, name, li / (len(TOY_LAYERS) - 1), c, h, w, c * h * w, name],
                )
        con.executemany("INSERT INTO matches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", matches)
        con.executemany("INSERT INTO unit_activations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", activ)
        con.execute(
            "INSERT INTO match_runs (dataset, model, top_k, n_stimuli, n_passes) VALUES (?, 'toy', ?, ?, 1)",
            [dataset, top_k, stim.stop - stim.start],
        )
    return r


@pytest.fixture
def pair(store, monkeypatch):
    """The store with mini-a and mini-b matched; the responses; the fake source patched in."""
    import precompute.statistics.streaming_pass as sp

    rng = np.random.default_rng(7)
    a = make_tables(0, N_A, 0, {})
    b = make_tables(N_A, N_B, 1, {"IT-008": "IT-108"})
    u1 = ACTS[1][:, 2, 1, 0].astype(np.float64)
    u2 = ACTS[2][:, 5, 0, 0].astype(np.float64)
    ra, rb = a.responses.astype(np.float64), b.responses.astype(np.float64)
    ra[0] = 3 * u1[:N_A] + 5
    rb[0] = 2 * u1[N_A:] + 4 + 0.05 * rng.normal(size=N_B)
    ra[4] = 2 * u2[:N_A] + 1
    rb[3, 5] = np.nan  # a missing response on B
    a.responses, b.responses = ra.astype(np.float32), rb.astype(np.float32)
    write_dataset(store, "mini-a", a)
    write_dataset(store, "mini-b", b)
    sites_a, sites_b = a.sites["site_id"].tolist(), b.sites["site_id"].tolist()
    r_a = write_matches(store, "mini-a", a.responses, sites_a, slice(0, N_A), top_k=5, first=True)
    r_b = write_matches(store, "mini-b", b.responses, sites_b, slice(N_A, N_A + N_B), top_k=2, first=False)
    source = FakeSource()
    monkeypatch.setattr(sp, "open_model_source", lambda ctx: source)
    monkeypatch.setattr(cross_dataset, "open_model_source", lambda ctx: source)
    return store, a, b, r_a, r_b, source


def _query(store, sql: str, params: list) -> pd.DataFrame:
    with store.connect() as con:
        return con.execute(sql, params).df()


# ---------------------------------------------------------------------------------------------- pure functions
def test_shared_site_ids_keep_the_evaluation_order():
    assert shared_site_ids(["a", "b", "c"], ["c", "x", "a"]) == ["c", "a"]
    assert shared_site_ids(["a"], ["b"]) == []


def test_cross_dataset_r_is_corrcoef_over_finite_stimuli():
    rng = np.random.default_rng(0)
    resp, vals = rng.normal(size=(3, 30)), rng.normal(size=(3, 30))
    resp[1, 4] = np.nan
    vals[2] = np.nan  # no unit
    got = cross_dataset_r(resp, vals)
    assert got[0] == pytest.approx(np.corrcoef(resp[0], vals[0])[0, 1], abs=1e-12)
    keep = np.isfinite(resp[1])
    assert got[1] == pytest.approx(np.corrcoef(resp[1, keep], vals[1, keep])[0, 1], abs=1e-12)
    assert np.isnan(got[2])


# ---------------------------------------------------------------------------------------------- the analysis
def test_cross_dataset_equals_brute_force_selection_on_a_and_r_on_b(pair):
    from precompute.jobs.analyze import run_analyses

    store, a, b, r_a, r_b, source = pair
    with store.connect() as con:
        stored_before = {
            tuple(x)
            for x in con.execute(
                "SELECT layer_idx, channel, y, x FROM unit_activations WHERE dataset = 'mini-b'"
            ).fetchall()
        }
    ran = run_analyses(store, "mini-b", ["toy"], ["cross_dataset"], options={"select_on": "mini-a"})
    assert ran == [("analyze:cross_dataset@mini-a:mini-b:toy", True)]

    # brute force: best unit on A (float64 over all units), its r on B's stimuli
    units_b = unit_matrix(slice(N_A, N_A + N_B))
    resp_b = b.responses.astype(np.float64)
    sites_b = b.sites["site_id"].tolist()
    shared = [s for s in sites_b if s in set(a.sites["site_id"])]
    assert len(shared) == 8 and "IT-108" not in shared
    expected, best = {}, {}
    for site in shared:
        i_a, i_b = a.sites["site_id"].tolist().index(site), sites_b.index(site)
        flat = int(np.nanargmax(r_a[i_a]))
        best[site] = unit_of(flat)
        keep = np.isfinite(resp_b[i_b])
        expected[site] = np.corrcoef(resp_b[i_b, keep], units_b[keep, flat])[0, 1]
    got = _query(
        store,
        "SELECT site_id, value FROM site_scores WHERE dataset = 'mini-b' AND model = 'toy' AND "
        "metric = 'cross_dataset@mini-a'",
        [],
    ).set_index("site_id")["value"]
    assert sorted(got.index) == sorted(shared)
    for site in shared:
        assert got[site] == pytest.approx(expected[site], abs=1e-6)
    # planted: the site copied from a unit on both datasets keeps r ~ 1; the one copied on A only does not
    assert got["V4-000"] > 0.99 and abs(got["IT-004"]) < 0.6

    scores = _query(
        store,
        "SELECT region, metric, value, ci_low, ci_high FROM scores WHERE dataset = 'mini-b' AND model = 'toy'",
        [],
    )
    for region in ("V4", "IT"):
        vals = [expected[s] for s in shared if s.startswith(region)]
        row = scores[(scores.metric == "cross_dataset@mini-a") & (scores.region == region)].iloc[0]
        assert row.value == pytest.approx(np.median(vals), abs=1e-6)
        assert row.ci_low <= row.value <= row.ci_high and row.ci_low < row.ci_high
        srow = scores[(scores.metric == "cross_dataset_stimuli@mini-a") & (scores.region == region)].iloc[0]
        assert srow.ci_low <= srow.value <= srow.ci_high
        n = scores[(scores.metric == "cross_dataset_sites@mini-a") & (scores.region == region)].value.iloc[0]
        assert n == len(vals)
        # how many shared sites keep the same best unit on B (B's brute-force best)
        same = [best[s] == unit_of(int(np.nanargmax(r_b[sites_b.index(s)]))) for s in shared if s.startswith(region)]
        frac = scores[(scores.metric == "cross_dataset_same_unit@mini-a") & (scores.region == region)].value.iloc[0]
        assert frac == pytest.approx(np.mean(same))

    # units not gathered on B before were gathered now (reason 'requested'), with B's true activations
    with store.connect() as con:
        rows = con.execute(
            'SELECT layer_idx, channel, y, x, reason, "values" FROM unit_activations '
            "WHERE dataset = 'mini-b' AND model = 'toy'"
        ).fetchall()
    requested = {tuple(r[:4]): r[5] for r in rows if r[4] == "requested"}
    assert set(requested) == set(best.values()) - stored_before
    assert requested and source.calls > 0
    for (li, c, y, x), values in requested.items():
        np.testing.assert_allclose(values, ACTS[li][N_A:, c, y, x], rtol=1e-6)

    # a rerun is skipped (same inputs); the A-side's re-matching makes it run again
    assert run_analyses(store, "mini-b", ["toy"], ["cross_dataset"], options={"select_on": "mini-a"}) == [
        ("analyze:cross_dataset@mini-a:mini-b:toy", False)
    ]
    with store.step("rematch") as con:
        con.execute("UPDATE match_runs SET created_at = TIMESTAMP '2030-01-01 00:00:00' WHERE dataset = 'mini-a'")
    assert run_analyses(store, "mini-b", ["toy"], ["cross_dataset"], options={"select_on": "mini-a"})[0][1]


def test_cross_dataset_refuses_datasets_without_shared_sites_and_a_missing_option(pair):
    from precompute.jobs.analyze import run_analyses

    store, *_ = pair
    renamed = {f"{'V4' if j < 4 else 'IT'}-{j:03d}": f"X-{j:03d}" for j in range(9)}
    write_dataset(store, "mini-c", make_tables(N_A, N_B, 2, renamed))
    with pytest.raises(UserError, match="share no site ids"):
        run_analyses(store, "mini-c", ["toy"], ["cross_dataset"], options={"select_on": "mini-a"})
    with pytest.raises(UserError, match="--select-on"):
        run_analyses(store, "mini-b", ["toy"], ["cross_dataset"])
    with pytest.raises(UserError, match="itself"):
        run_analyses(store, "mini-b", ["toy"], ["cross_dataset"], options={"select_on": "mini-b"})
    with pytest.raises(UserError, match="not matched"):
        run_analyses(store, "mini-a", ["toy"], ["cross_dataset"], options={"select_on": "mini-c"})
    # nothing was written by the refused runs
    n = _query(store, "SELECT count(*) AS n FROM scores WHERE metric LIKE 'cross_dataset%'", [])["n"].iloc[0]
    assert n == 0


def test_the_cli_passes_select_on_and_a_run_of_all_analyses_skips_cross_dataset(pair):
    from precompute.cli import analyze as analyze_cli
    from precompute.jobs import demo
    from precompute.jobs.analyze import run_analyses

    store, *_ = pair
    parser = argparse.ArgumentParser()
    analyze_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["analyze", "--dataset", "mini-b", "--model", "toy", "--only", "cross_dataset", "--select-on", "mini-a"]
    )
    assert args.func(args, store) == 0
    got = _query(store, "SELECT count(*) AS n FROM site_scores WHERE metric = 'cross_dataset@mini-a'", [])
    assert got["n"].iloc[0] == 8
    # every analysis, no --select-on: cross_dataset is not planned; the demo never plans it either
    plan = run_analyses(store, "mini-b", ["toy"], ["neural_correlation"])
    assert [name for name, _ in plan] == ["analyze:neural_correlation:mini-b:toy"]
    assert not any("cross_dataset" in s.name for s in demo.analysis_steps("default"))


def test_removing_the_selection_dataset_forgets_the_scores_read_from_it(pair):
    """Scores of B selected on A are derived from A: replacing or removing A deletes them and their step."""
    from backend.schema import remove_dataset_rows
    from precompute.core.store import steps_done
    from precompute.jobs.analyze import run_analyses

    store, *_ = pair
    run_analyses(store, "mini-b", ["toy"], ["cross_dataset"], options={"select_on": "mini-a"})
    with store.step("remove:mini-a") as con:
        remove_dataset_rows(con, "mini-a")
        store.forget_derived(con, dataset="mini-a")
    with store.connect() as con:
        left = con.execute("SELECT count(*) FROM scores WHERE ends_with(metric, '@mini-a')").fetchall()[0][0]
        left += con.execute("SELECT count(*) FROM site_scores WHERE ends_with(metric, '@mini-a')").fetchall()[0][0]
        assert left == 0
        assert not [s for s in steps_done(con) if "@mini-a" in s]


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_cross_dataset_from_a_batch_file_on_either_executor(pair, tmp_path, executor):
    """A batch [[analyze]] with select_on runs the same step as `analyze --select-on`; the dask executor runs
    it on the coordinator (its snapshot for a worker holds one dataset), so no cluster starts here."""
    from precompute.jobs.batch import execute_batch
    from precompute.jobs.batch_file import parse_batch

    store, a, b, r_a, r_b, source = pair
    batch = parse_batch(
        {
            "analyze": [{"dataset": "mini-b", "model": "toy", "analyses": ["cross_dataset"], "select_on": "mini-a"}],
            "executor": executor,
        },
        tmp_path,
    )
    said = []
    report = execute_batch(batch, store, results_dir=tmp_path / "results", report=said.append)
    assert [(o.task_id, o.state) for o in report.outcomes] == [("analyze:cross_dataset@mini-a:mini-b:toy", "ran")]
    got = _query(store, "SELECT site_id, value FROM site_scores WHERE metric = 'cross_dataset@mini-a'", [])
    site = b.sites["site_id"].tolist().index("V4-000")
    flat = int(np.nanargmax(r_a[0]))
    keep = np.isfinite(b.responses[site])
    expected = np.corrcoef(b.responses[site, keep].astype(np.float64), unit_matrix(slice(N_A, N_A + N_B))[keep, flat])[
        0, 1
    ]
    assert got.set_index("site_id")["value"]["V4-000"] == pytest.approx(expected, abs=1e-6)
    assert len(got) == 8
    if executor == "dask":
        assert any("on the coordinator" in line for line in said)
    # a second run skips it (same inputs)
    again = execute_batch(batch, store, results_dir=tmp_path / "results", report=said.append)
    assert [o.state for o in again.outcomes] == ["skipped"]
