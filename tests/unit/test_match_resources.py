"""The matching engine's resources: the pass plan and memory budget, its lock between jobs, top-k ties,
the GPU product step on any torch device, and the image prefetch."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.core.errors import UserError
from precompute.match.plan import bytes_per_unit, plan_passes
from precompute.match.topk import order_candidates, topk_rows
from precompute.models.base import LayerInfo


def test_plan_splits_at_channels_and_refuses_hopeless_budgets():
    layers = [LayerInfo(0, "a", 4, 5, 5), LayerInfo(1, "b", 10, 1, 1)]
    per_unit = bytes_per_unit(8, 1, 16)
    plan = plan_passes(
        layers, 8, 100, 4 * 110 + 30 * per_unit, batch_size=1, reserve_bytes=0, max_stage=16, min_stage=16
    )
    assert plan.batch_size == 1 and len(plan.passes) == 5
    for p in plan.passes:
        assert p.units <= 30
        for seg in p.segments:
            assert seg.start % (25 if seg.layer_idx == 0 else 1) == 0
            assert seg.units % (25 if seg.layer_idx == 0 else 1) == 0
    covered = sorted((s.layer_idx, u) for p in plan.passes for s in p.segments for u in range(s.start, s.stop))
    assert covered == [(0, u) for u in range(100)] + [(1, u) for u in range(10)]
    with pytest.raises(UserError, match="memory budget"):
        plan_passes(layers, 8, 100, 4 * 110 + 10 * per_unit, batch_size=1, reserve_bytes=0, max_stage=16, min_stage=16)
    # a budget just short of the need: the message's need is above the budget it prints (rounded up)
    gib = 1 << 30
    with pytest.raises(UserError, match=r"budget of 1\.00 GiB .*at least 1\.01 GiB"):
        plan_passes(
            layers, 8, 100, gib, batch_size=1, reserve_bytes=gib - 4 * 110 - 20 * per_unit, max_stage=16, min_stage=16
        )


def test_topk_rows_breaks_ties_by_index():
    import torch

    x = torch.tensor(
        [
            [0.5, 0.9, 0.9, 0.1, 0.9, 0.9],
            [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],
            [float("-inf"), 0.3, float("-inf"), 0.3, 0.1, 0.0],
        ]
    )
    v, i = topk_rows(x, 3)
    assert i.tolist() == [[1, 2, 4], [0, 1, 2], [1, 3, 4]]
    np.testing.assert_allclose(v[0], [0.9, 0.9, 0.9])
    v, i = topk_rows(x, 6)
    assert i[2].tolist() == [1, 3, 4, 5, -1, -1]
    v, i = order_candidates(np.array([[0.3, np.nan, 0.3]]), np.array([[9, 1, 4]]), 3)
    assert i.tolist() == [[4, 9, -1]]


def test_default_budget_runs_wait_for_each_other(tmp_path, monkeypatch):
    """Two engines at the default budget (a fraction of all RAM) never run at once on one machine.

    Deterministic: the first holds the lock until the second has said that it waits (its warning, logged
    just before it blocks), so the second provably waited; no sleep decides anything."""
    import logging
    import threading

    from precompute.match.engine import _default_budget_lock

    monkeypatch.setenv("UNITSCOPE_ENGINE_LOCK", str(tmp_path / "engine.lock"))
    events = []
    waiting = threading.Event()

    class Waiting(logging.Handler):
        def emit(self, record):
            if "another matching job" in record.getMessage():
                waiting.set()

    def second():
        with _default_budget_lock(True):
            events.append("second in")

    handler = Waiting()
    logger = logging.getLogger("precompute.match.engine")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        with _default_budget_lock(True):
            thread = threading.Thread(target=second)
            thread.start()
            assert waiting.wait(120), "the second engine never reported that it waits"  # bounds the wait only
            events.append("first out")
        thread.join(120)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert events == ["first out", "second in"]
    with _default_budget_lock(True), _default_budget_lock(False):  # an explicit budget never waits
        pass


def test_the_default_budget_follows_the_environment(monkeypatch):
    from precompute.match.plan import DEFAULT_RAM_FRACTION, default_memory_budget

    monkeypatch.setenv("UNITSCOPE_MEMORY_GB", "2.5")
    assert default_memory_budget() == int(2.5 * (1 << 30))
    monkeypatch.setenv("UNITSCOPE_MEMORY_GB", "lots")
    with pytest.raises(UserError, match="UNITSCOPE_MEMORY_GB"):
        default_memory_budget()
    monkeypatch.delenv("UNITSCOPE_MEMORY_GB")
    import psutil

    assert default_memory_budget() == int(psutil.virtual_memory().total * DEFAULT_RAM_FRACTION)


@pytest.mark.parametrize("uniform", [True, False])
def test_the_gpu_product_step_on_any_torch_device(uniform):
    """accumulate._product_gpu (no GPU here): run on CPU tensors, it must give the shifted product, the median
    shift and the (weighted) squares for every stage block, leaving other columns alone."""
    from types import SimpleNamespace

    import torch

    from precompute.match.accumulate import PassBuffers, _product_gpu
    from precompute.match.plan import Segment

    rng = np.random.default_rng(9)
    stage, k, s0, n_stim, rows, groups = 6, 5, 2, 9, 4, 2
    units = [7, 3]
    n_units = sum(units)
    flat = torch.from_numpy(rng.standard_normal(stage * n_units).astype(np.float32))
    a_all = np.concatenate(
        [
            flat.numpy()[stage * c : stage * (c + u)].reshape(stage, u)[:k]
            for c, u in zip([0, units[0]], units, strict=True)
        ],
        axis=1,
    ).astype(np.float64)
    blocks = [(Segment(0, 0, units[0]), 0, None), (Segment(1, 0, units[1]), units[0], None)]
    zext = torch.from_numpy(rng.standard_normal((rows + groups, n_stim)).astype(np.float32))
    w = torch.from_numpy(rng.integers(0, 3, (groups, n_stim)).astype(np.float32))
    acc = torch.zeros((rows + groups, n_units + 2))[:, :n_units]  # a strided view, as a column block is
    sumsq = torch.zeros((groups, n_units), dtype=torch.float64)
    shift = torch.zeros(n_units)
    state = SimpleNamespace(zext=zext, w_ordered=w, uniform=uniform, plan=SimpleNamespace(stage=stage))  # what it reads
    buf = PassBuffers(acc=acc, sumsq=sumsq, window_sq=None, shift=shift, flat=flat, blocks=blocks)
    _product_gpu(state, buf, s0, k, [(0, rows + groups)], 3)
    expected_shift = np.sort(a_all[:3], axis=0)[1]  # the median of the first 3 staged rows
    np.testing.assert_allclose(shift.numpy(), expected_shift, rtol=1e-6)
    centred = a_all - expected_shift
    np.testing.assert_allclose(acc.numpy(), zext.numpy()[:, s0 : s0 + k].astype(np.float64) @ centred, atol=1e-5)
    if uniform:
        np.testing.assert_allclose(sumsq.numpy()[0], (centred**2).sum(axis=0), rtol=1e-5)
        assert not sumsq.numpy()[1].any()
    else:
        np.testing.assert_allclose(sumsq.numpy(), w.numpy()[:, s0 : s0 + k] @ centred**2, rtol=1e-5)


def test_prefetch_images_yields_every_batch_in_order_decoding_the_next_one_meanwhile():
    import threading
    import time

    from precompute.core.feeds import prefetch_images

    class Feed:
        def __init__(self, fail_at=None):
            self.loads, self.threads, self.fail_at = [], set(), fail_at
            self.started = threading.Event()

        def load(self, idx):
            self.threads.add(threading.current_thread().name)
            if self.fail_at is not None and int(idx[0]) == self.fail_at:
                raise OSError("corrupt PNG")
            self.loads.append(int(idx[0]))
            return [np.full((2, 2), int(i)) for i in idx]

    feed = Feed()
    batches = [np.arange(b, min(10, b + 3)) for b in range(0, 10, 3)]
    seen = []
    for k, (idx, images, waited) in enumerate(prefetch_images(feed, batches)):
        np.testing.assert_array_equal(idx, batches[k])
        assert [int(im[0, 0]) for im in images] == idx.tolist() and waited >= 0
        # the next batch was asked for before this one is used
        deadline = time.monotonic() + 120  # bounds the wait for the decode thread only
        while len(feed.loads) < min(k + 2, len(batches)) and time.monotonic() < deadline:
            threading.Event().wait(0.01)
        assert len(feed.loads) == min(k + 2, len(batches))
        seen.append(k)
    assert seen == [0, 1, 2, 3] and all(n.startswith("unitscope-decode") for n in feed.threads)
    assert list(prefetch_images(feed, [])) == []
    # a failing decode reaches the caller at its batch, with what came before delivered
    got = []
    with pytest.raises(OSError, match="corrupt PNG"):
        for idx, _images, _w in prefetch_images(Feed(fail_at=6), batches):
            got.append(int(idx[0]))
    assert got == [0, 3]
    # a caller that stops early leaves no thread behind
    stream = prefetch_images(Feed(), batches)
    next(stream)
    stream.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("unitscope-decode")]
