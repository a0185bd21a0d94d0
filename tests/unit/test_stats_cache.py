"""The statistics pass cache keeps only the latest file of each (dataset, model)."""

from __future__ import annotations

import numpy as np

from precompute.statistics.pass_cache import _pair_prefix, prune_cache


def _cache_files(store) -> list:
    return sorted((store.served_path.parent / "cache" / "stats").glob("pass-*"))


def test_a_new_pass_replaces_the_same_pairs_old_files_and_keeps_other_pairs(mini_db, monkeypatch):
    import precompute.statistics.streaming_pass as sp
    from precompute.jobs.analyze import run_analyses
    from tests.support.factories import write_toy_results
    from tests.unit.test_stats_crossval import ToySource

    write_toy_results(mini_db, model="toy")
    write_toy_results(mini_db, model="toy2", seed=1)
    monkeypatch.setattr(sp, "open_model_source", lambda ctx: ToySource(24))
    run_analyses(mini_db, "mini", ["toy", "toy2"], ["null"])
    first = _cache_files(mini_db)
    assert len(first) == 2  # one per model
    folder = first[0].parent
    legacy = folder / ("pass-" + "0" * 24 + ".npz")  # the name format before the (dataset, model) prefix
    legacy.write_bytes(b"old")
    toy_file = next(p for p in first if p.name.startswith(_pair_prefix("mini", "toy")))
    leftover = toy_file.with_name(toy_file.name + ".tmp.npz")  # a write killed midway
    leftover.write_bytes(b"partial")

    # another seed for toy: a new key; toy's old file, its leftover and the legacy file go, toy2's stays
    run_analyses(mini_db, "mini", ["toy"], ["null"], seed=1, force=True)
    now = _cache_files(mini_db)
    assert len(now) == 2
    assert toy_file not in now and not leftover.exists() and not legacy.exists()
    assert next(p for p in first if p != toy_file) in now
    # the kept file serves a rerun with the same key (no model run)
    monkeypatch.setattr(sp, "open_model_source", lambda ctx: (_ for _ in ()).throw(AssertionError("recomputed")))
    run_analyses(mini_db, "mini", ["toy"], ["null"], seed=1, force=True)
    assert _cache_files(mini_db) == now


def test_prune_cache_only_touches_the_written_pairs_files(tmp_path):
    a, b = _pair_prefix("d", "m1"), _pair_prefix("d", "m2")
    assert a != b and len(a) == len(b)
    names = [f"{a}{'1' * 24}.npz", f"{a}{'2' * 24}.npz", f"{b}{'3' * 24}.npz", "notes.txt"]
    for n in names:
        (tmp_path / n).write_bytes(np.zeros(1).tobytes())
    removed = prune_cache(tmp_path / names[1])
    assert [p.name for p in removed] == [names[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])
