"""One (dataset, model) pair through the Store: tables written, reruns skipped, --force redoes,
interrupted runs leave the database as it was, ids aligned by id, gathered activations exact."""

from __future__ import annotations

import io

import duckdb
import numpy as np
import pytest
from PIL import Image

from precompute.core.errors import UserError
from precompute.core.store import Store
from precompute.jobs.batch import run_batch
from precompute.jobs.batch_file import load_batch
from precompute.match import runner
from precompute.match.engine import EngineConfig
from precompute.match.gather import gather_more
from precompute.match.plan import bytes_per_unit
from precompute.match.runner import served_predates_heldout
from tests.support.sources import SyntheticSource, UnitEdits

N_STIM, N_SITES, TOP_K = 90, 6, 8
SHAPES = [(3, 4, 4), (5,), (4, 2, 2)]


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def make_source(*_args) -> SyntheticSource:
    return SyntheticSource(SHAPES, seed=7, edits=UnitEdits(dead=(0,), constant=(5,)), model="toy")


@pytest.fixture()
def store(tmp_path):
    """A store holding dataset 'toy' whose stimulus ids do not sort like idx and whose rows are shuffled."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (12, 12), dtype=np.uint8) for _ in range(N_STIM)]
    stim_ids = [f"s{(37 * i) % N_STIM:03d}-{i}" for i in range(N_STIM)]
    site_ids = [f"IT-{N_SITES - i:03d}" for i in range(N_SITES)]
    source = make_source()
    acts = np.concatenate([o.reshape(N_STIM, -1) for o in source.activations(images, stim_ids)], axis=1)
    responses = (acts[:, rng.choice(np.arange(10, acts.shape[1]), N_SITES)] + rng.standard_normal((N_STIM, N_SITES))).T
    st = Store(tmp_path / "unitscope.duckdb")
    with st.step("test:dataset") as con:
        con.execute("INSERT INTO datasets (dataset, synthetic) VALUES ('toy', true)")
        for i in rng.permutation(N_STIM):
            con.execute("INSERT INTO stimuli (dataset, stimulus_id, idx) VALUES ('toy', ?, ?)", [stim_ids[i], int(i)])
            con.execute("INSERT INTO stimulus_images VALUES ('toy', ?, ?)", [stim_ids[i], _png(images[i])])
        for j in range(N_SITES):
            con.execute(
                "INSERT INTO sites (dataset, site_id, idx, region) VALUES ('toy', ?, ?, 'IT')", [site_ids[j], j]
            )
        rows = [
            ("toy", site_ids[j], stim_ids[i], float(responses[j, i])) for j in range(N_SITES) for i in range(N_STIM)
        ]
        order = rng.permutation(len(rows))
        con.executemany("INSERT INTO responses VALUES (?, ?, ?, ?)", [rows[k] for k in order])
    st.test_truth = dict(acts=acts.astype(np.float64), responses=responses, site_ids=site_ids)
    return st


def run(st, **kw):
    kw.setdefault("config", EngineConfig(device="cpu", batch_size=16, max_stage=40, min_stage=20))
    kw.setdefault("top_k", TOP_K)
    return runner.run_pair(st, "toy", "toy", progress=False, source_factory=make_source, **kw)


def served(st):
    return duckdb.connect(str(st.served_path), read_only=True)


def build_id(st):
    con = served(st)
    try:
        return con.execute("SELECT value FROM build_info WHERE key = 'build_id'").fetchone()[0]
    finally:
        con.close()


# long: each stored table checked against its brute-force reference, one block per table
def test_tables_round_trip_and_match_the_reference(store):
    outcome = run(store)
    assert outcome is not None and outcome.n_passes == 1
    acts, responses = store.test_truth["acts"], store.test_truth["responses"]
    con = served(store)
    try:
        m = con.execute(
            "SELECT site_id, rank, layer_idx, channel, y, x, r FROM matches "
            "WHERE dataset = 'toy' AND model = 'toy' ORDER BY site_id, rank"
        ).df()
        layers = SyntheticSource(SHAPES).layers
        offsets = np.cumsum([0] + [la.units for la in layers])
        for j, site in enumerate(store.test_truth["site_ids"]):
            rows = m[m.site_id == site]
            assert rows["rank"].tolist() == list(range(1, TOP_K + 1))
            y = responses[j] - responses[j].mean()
            a = acts - acts.mean(axis=0)
            sd = np.sqrt((a**2).sum(axis=0))
            ref = np.where(sd > 0, y @ a / (np.linalg.norm(y) * np.where(sd > 0, sd, 1)), -np.inf)
            best = np.lexsort((np.arange(len(ref)), -ref))[:TOP_K]
            got = [
                offsets[r.layer_idx]
                + r.channel * layers[r.layer_idx].height * layers[r.layer_idx].width
                + r.y * layers[r.layer_idx].width
                + r.x
                for r in rows.itertuples()
            ]
            assert got == best.tolist()
            np.testing.assert_allclose(rows["r"], ref[best], atol=1e-4)
        counts = dict(
            con.execute(
                "SELECT 'layer', count(*) FROM layer_matches UNION ALL SELECT 'fm', count(*) FROM featuremap_matches "
                "UNION ALL SELECT 'runs', count(*) FROM match_runs"
            ).fetchall()
        )
        live = np.ptp(acts, axis=0) > 0
        assert not live[0] and not live[5]  # the dead and the constant unit
        per_layer = [live[offsets[i] : offsets[i + 1]] for i in range(len(layers))]
        assert counts["layer"] == N_SITES * sum(min(TOP_K, int(v.sum())) for v in per_layer)
        assert counts["fm"] == N_SITES * sum(
            int(v.reshape(la.channels, -1).any(axis=1).sum()) for v, la in zip(per_layer, layers, strict=True)
        )
        assert counts["runs"] == 1
        run_row = con.execute("SELECT top_k, n_stimuli, n_passes FROM match_runs").fetchone()
        assert run_row == (TOP_K, N_STIM, 1)
        # Gathered activations: stimuli in idx order, exactly the model's values.
        ua = con.execute('SELECT layer_idx, channel, y, x, reason, "values" FROM unit_activations').df()
        assert set(ua.reason) <= {"topk", "heldout", "random"} and {"topk", "random"} <= set(ua.reason)
        # split_matches: each site's best unit on every training set (folds 0 .. t-1), the reference's
        folds = con.execute(
            "SELECT t.idx, f.fold FROM stimulus_folds f JOIN stimuli t USING (dataset, stimulus_id) ORDER BY t.idx"
        ).fetchnumpy()["fold"]
        assert len(folds) == N_STIM and np.ptp(np.bincount(folds)) <= 1
        sm = con.execute(
            "SELECT site_id, train_folds, layer_idx, channel, y, x, r FROM split_matches WHERE rank = 1"
        ).df()
        assert sorted(sm.train_folds.unique()) == list(runner.TRAIN_FOLDS)
        for t in runner.TRAIN_FOLDS:
            train = folds < t
            for j, site in enumerate(store.test_truth["site_ids"]):
                y = responses[j, train] - responses[j, train].mean()
                a = acts[train] - acts[train].mean(axis=0)
                sd = np.sqrt((a**2).sum(axis=0))
                ref = np.where(sd > 0, y @ a / (np.linalg.norm(y) * np.where(sd > 0, sd, 1)), -np.inf)
                row = sm[(sm.site_id == site) & (sm.train_folds == t)].iloc[0]
                la = layers[row.layer_idx]
                got = offsets[row.layer_idx] + row.channel * la.height * la.width + row.y * la.width + row.x
                assert abs(ref[got] - ref.max()) < 1e-4 and abs(row.r - ref.max()) < 1e-4
        chosen = set(sm[["layer_idx", "channel", "y", "x"]].itertuples(index=False, name=None))
        assert chosen <= set(ua[["layer_idx", "channel", "y", "x"]].itertuples(index=False, name=None))
        topk_units = set(m[["layer_idx", "channel", "y", "x"]].itertuples(index=False, name=None))
        assert (
            set(ua[ua.reason == "topk"][["layer_idx", "channel", "y", "x"]].itertuples(index=False, name=None))
            == topk_units
        )
        for r in ua.itertuples():
            g = (
                offsets[r.layer_idx]
                + r.channel * layers[r.layer_idx].height * layers[r.layer_idx].width
                + r.y * layers[r.layer_idx].width
                + r.x
            )
            np.testing.assert_array_equal(np.asarray(r.values, np.float32), acts[:, g].astype(np.float32))
        steps = con.execute("SELECT value FROM build_info WHERE key = 'steps_done'").fetchone()[0]
        assert "match:toy:toy" in steps
    finally:
        con.close()


def test_rerun_is_skipped_and_force_redoes(store, caplog):
    run(store)
    first = build_id(store)
    assert run(store) is None
    assert build_id(store) == first  # nothing published
    # another --top-k does not redo it silently: the skip says so and how to redo it
    with caplog.at_level("WARNING", logger="precompute.match.runner"):
        assert run(store, top_k=TOP_K + 2) is None
    assert f"already matched with top-k {TOP_K} (this run asks for {TOP_K + 2})" in caplog.text
    assert "--force" in caplog.text and build_id(store) == first
    again = run(store, force=True)
    assert again is not None and build_id(store) != first
    con = served(store)
    try:
        assert con.execute("SELECT count(*) FROM match_runs").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM matches").fetchone()[0] == N_SITES * TOP_K
    finally:
        con.close()


def test_interrupted_run_leaves_the_database_as_it_was(store):
    before = build_id(store)

    class Boom(SyntheticSource):
        def activations(self, images, stimulus_ids, layer_indices=None):
            if self.calls >= 3:
                raise KeyboardInterrupt
            return super().activations(images, stimulus_ids, layer_indices)

    with pytest.raises(KeyboardInterrupt):
        runner.run_pair(
            store,
            "toy",
            "toy",
            top_k=TOP_K,
            progress=False,
            source_factory=lambda *a: Boom(SHAPES, seed=7),
            config=EngineConfig(device="cpu", batch_size=16),
        )
    assert build_id(store) == before
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM matches").fetchone()[0] == 0
        assert "match:toy:toy" not in con.execute("SELECT value FROM build_info WHERE key='steps_done'").fetchone()[0]
    assert run(store) is not None  # a rerun finishes it


def test_multiple_passes_give_the_same_tables(store):
    run(store)
    con = served(store)
    one = con.execute("SELECT * FROM matches ORDER BY site_id, rank").df()
    con.close()
    per_unit = bytes_per_unit(N_SITES, 1, 20)
    tiny = EngineConfig(
        device="cpu", batch_size=4, max_stage=40, min_stage=20, reserve_bytes=0, memory_bytes=4 * 4 * 69 + 30 * per_unit
    )  # 69 units, room for 30 per pass
    outcome = runner.run_pair(
        store, "toy", "toy", top_k=TOP_K, progress=False, source_factory=make_source, config=tiny, force=True
    )
    assert outcome.n_passes == 4  # 16 | 16 | 16+5+8 | 8: layers split at channels
    con = served(store)
    many = con.execute("SELECT * FROM matches ORDER BY site_id, rank").df()
    con.close()
    assert one[["site_id", "rank", "layer_idx", "channel", "y", "x"]].equals(
        many[["site_id", "rank", "layer_idx", "channel", "y", "x"]]
    )
    np.testing.assert_allclose(one.r, many.r, atol=1e-6)


def test_gather_more_adds_requested_units(store):
    run(store)
    with store.step("test:gather") as con:
        added = gather_more(con, "toy", "toy", [(0, 2, 3, 1), (2, 1, 0, 1)], store, source=make_source())
        again = gather_more(con, "toy", "toy", [(0, 2, 3, 1)], store, source=make_source())
        with pytest.raises(UserError, match="outside layer"):
            gather_more(con, "toy", "toy", [(0, 9, 0, 0)], store, source=make_source())
    assert added == 2 - _already(store, [(0, 2, 3, 1), (2, 1, 0, 1)], exclude_reason="requested") and again == 0
    con = served(store)
    try:
        vals = con.execute(
            'SELECT "values" FROM unit_activations WHERE layer_idx = 0 AND channel = 2 AND y = 3 AND x = 1'
        ).fetchone()[0]
        np.testing.assert_array_equal(
            np.asarray(vals, np.float32), store.test_truth["acts"][:, 2 * 16 + 3 * 4 + 1].astype(np.float32)
        )
    finally:
        con.close()


def _already(st, units, exclude_reason):
    con = served(st)
    try:
        rows = con.execute(
            "SELECT layer_idx, channel, y, x FROM unit_activations WHERE reason <> ?", [exclude_reason]
        ).fetchall()
    finally:
        con.close()
    return len(set(units) & set(rows))


def test_unknown_dataset_is_a_user_error(store):
    with pytest.raises(UserError, match=r"dataset 'nope' does not exist \(known: toy\).*datasets import"):
        runner.run_pair(store, "nope", "toy", progress=False, source_factory=make_source)


def test_batch_runs_datasets_x_models(store, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "default_source_factory", make_source)
    path = tmp_path / "batch.toml"
    path.write_text('[defaults]\ntop_k = 5\n\n[[run]]\ndataset = "toy"\nmodels = ["toy"]\n')
    batch = load_batch(path)
    assert [(r.dataset, r.model, r.top_k) for r in batch.runs] == [("toy", "toy", 5)]
    with pytest.raises(UserError, match=r"model 'toy' .* is neither in the database"):  # checked before it runs
        run_batch(batch, store)
    with store.step("test:model") as con:  # what `models add` records (the source here is synthetic)
        con.execute(
            "INSERT INTO models (model, family, source, kind, input_size, in_channels, parameters, "
            "total_units, n_layers, layout) VALUES ('toy', 'toy', 'test', 'pretrained', 12, 1, 0, 0, 3, "
            "'nchw')"
        )
    assert run_batch(batch, store) == 0
    with store.connect() as con:
        assert con.execute("SELECT top_k FROM match_runs").fetchone()[0] == 5
    path.write_text('[[run]]\ndataset = "toy"\nmodel = "toy"\nbogus = 1\n')
    with pytest.raises(UserError, match="unknown keys"):
        load_batch(path)


def test_demo_steps_cover_every_demo_model():
    from precompute.jobs.demo import match_steps

    assert [s.name for s in match_steps("quick")] == ["match:synthetic-hvm-quick:efficientnet-lite0"]
    names = [s.name for s in match_steps("default")]
    assert sorted(names) == sorted(
        f"match:synthetic-hvm:{m}"
        for m in (
            "efficientnet-lite0",
            "efficientnet-lite1",
            "efficientnet-lite2",
            "pixels",
            "random-efficientnet-lite0",
            "untrained-efficientnet-lite0",
        )
    )
    assert [s.name for s in match_steps("full")] == names


def test_a_pair_matched_before_held_out_selection_is_matched_again(store):
    """A database from before split_matches: `run` without --force and the demo's resume both redo the pair."""

    def _stale(dataset, model):  # the demo's check, as its match step for (dataset, model) makes it
        return lambda path: served_predates_heldout(path, dataset, model)

    run(store)
    with store.step("old-build") as con:
        con.execute("DELETE FROM split_matches")
    assert _stale("toy", "toy")(store.served_path)
    outcome = run(store)  # not skipped: the held-out scores need what the old run did not store
    assert outcome is not None
    assert not _stale("toy", "toy")(store.served_path)
    with served(store) as con:
        assert con.execute("SELECT count(DISTINCT train_folds) FROM split_matches").fetchone()[0] == 9
