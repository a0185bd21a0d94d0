"""The engine on a tiny real ONNX graph run by onnxruntime (through precompute.models.sources)."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.core.feeds import ArrayFeed
from precompute.match.engine import EngineConfig, match_units
from precompute.match.rows import RowSet
from precompute.models.base import LayerInfo

sources = pytest.importorskip("precompute.models.sources")
onnx = pytest.importorskip("onnx")


def tiny_onnx(path) -> list[LayerInfo]:
    """input (N,1,8,8) -> Conv 3x3 (3 channels; channel 2 dead) -> Relu = layer0 (N,3,6,6)
    -> GlobalAveragePool -> Flatten = layer1 (N,3): a 4-D and a 2-D output."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    w[2] = 0.0
    b = np.array([0.1, -0.2, -1.0], np.float32)  # channel 2: relu(-1) = 0 everywhere
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["conv"]),
        helper.make_node("Relu", ["conv"], ["layer0"]),
        helper.make_node("GlobalAveragePool", ["layer0"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["layer1"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [
            helper.make_tensor_value_info("layer0", TensorProto.FLOAT, ["N", 3, 6, 6]),
            helper.make_tensor_value_info("layer1", TensorProto.FLOAT, ["N", 3]),
        ],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return [LayerInfo(0, "layer0", 3, 6, 6, "Relu", "layer0"), LayerInfo(1, "layer1", 3, 1, 1, "Flatten", "layer1")]


def tiny_source(tmp_path):
    """The tiny graph as an OnnxSource (one onnxruntime thread)."""
    layers = tiny_onnx(tmp_path / "tiny.onnx")
    return sources.OnnxSource(
        "tiny", tmp_path / "tiny.onnx", layers, input_size=8, in_channels=1, mean=[0.5], std=[0.5], threads=1
    )


def test_onnx_source_matches_brute_force(tmp_path):
    source = tiny_source(tmp_path)
    rng = np.random.default_rng(1)
    n = 150
    images = [rng.integers(0, 256, (10, 10), dtype=np.uint8) for _ in range(n)]  # resized to 8 by the source
    feed = ArrayFeed([f"s{i}" for i in range(n)], images)
    acts = np.concatenate([o.reshape(n, -1) for o in source.activations(images, feed.stimulus_ids)], axis=1)
    acts = acts.astype(np.float64)
    rows = (acts[:, [5, 40, 109]] + 0.3 * rng.standard_normal((n, 3)) * acts[:, [5, 40, 109]].std(0)).T
    result = match_units(
        source,
        feed,
        RowSet(rows),
        EngineConfig(top_k=4, batch_size=32, device="cpu", max_stage=64, min_stage=64, threads=1),
    )
    live = np.ptp(acts, axis=0) > 0
    assert not live[72:108].any()  # the dead channel
    for i, y in enumerate(rows):
        yc = y - y.mean()
        ac = acts[:, live] - acts[:, live].mean(0)
        ref = np.full(acts.shape[1], -np.inf)
        ref[live] = yc @ ac / (np.linalg.norm(yc) * np.linalg.norm(ac, axis=0))
        best = np.lexsort((np.arange(len(ref)), -ref))[:4]
        assert result.top_index[i].tolist() == best.tolist()
        np.testing.assert_allclose(result.top_r[i], ref[best], atol=1e-4)
        _, fm_flat = result.featuremap[0]
        assert fm_flat[i, 2] == -1  # a dead feature map has no best unit
    assert result.top_index[0, 0] == 5 and result.top_index[2, 0] == 109


def test_a_subset_of_layers_runs_a_cut_graph_with_the_same_outputs(tmp_path):
    """Asking for the early layer only runs a graph cut after it (onnxruntime would run every node)."""
    source = tiny_source(tmp_path)
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(5)]
    ids = [f"s{i}" for i in range(5)]
    full = source.activations(images, ids)
    early = source.activations(images, ids, layer_indices=[0])
    np.testing.assert_array_equal(early[0], full[0])
    cut = source.session_for(["layer0"])
    assert cut is not source.session and source.session_for(["layer0"]) is cut  # built once, reused
    assert [o.name for o in cut.get_outputs()] == ["layer0"]
    assert {n.op_type for n in sources.cut_graph(tmp_path / "tiny.onnx", "input", ["layer0"]).graph.node} == {
        "Conv",
        "Relu",
    }
    assert source.session_for(["layer0", "layer1"]) is source.session  # every layer: the whole graph
    late = source.activations(images, ids, layer_indices=[1])
    np.testing.assert_allclose(late[0], full[1], rtol=1e-6)


def test_outputs_are_written_in_place_where_an_array_is_given(tmp_path):
    """activations_into: onnxruntime writes each bound layer straight into the caller's rows (the engine's
    stage), equal to `activations`; a layer without an array comes back as a new one; a wrong array is
    refused with the layer's name."""
    source = tiny_source(tmp_path)
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(5)]
    ids = [f"s{i}" for i in range(5)]
    full = source.activations(images, ids)
    stage0 = np.full((9, 108), np.nan, np.float32)  # 9 staged rows; the batch goes to rows 2..6
    stage1 = np.full((9, 3), np.nan, np.float32)
    out = source.activations_into(images, ids, [0, 1], [stage0[2:7], stage1[2:7]])
    assert np.shares_memory(out[0], stage0) and np.shares_memory(out[1], stage1)
    np.testing.assert_array_equal(stage0[2:7], full[0].reshape(5, -1))
    np.testing.assert_allclose(stage1[2:7], full[1].reshape(5, -1), rtol=1e-6)
    assert np.isnan(stage0[:2]).all() and np.isnan(stage0[7:]).all()  # nothing written outside the batch
    out = source.activations_into(images, ids, [1, 0], [None, stage0[:5]])
    assert out[0].shape == (5, 3, 1, 1) and not np.shares_memory(out[0], stage0)
    np.testing.assert_allclose(out[0], full[1], rtol=1e-6)
    with pytest.raises(ValueError, match="layer0"):
        source.activations_into(images, ids, [0], [np.zeros((5, 100), np.float32)])


def test_the_engine_gives_the_same_answer_with_blocks_over_two_threads(tmp_path, monkeypatch):
    """Batches shifted and squared in blocks of a few units by two threads: the same as one thread."""
    from precompute.match import accumulate

    source = tiny_source(tmp_path)
    rng = np.random.default_rng(2)
    n = 90
    images = [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(n)]
    feed = ArrayFeed([f"s{i}" for i in range(n)], images)
    rows = rng.standard_normal((6, n))
    config = dict(top_k=8, batch_size=16, device="cpu", max_stage=32, min_stage=32)
    one = match_units(source, feed, RowSet(rows), EngineConfig(threads=1, **config))
    monkeypatch.setattr(accumulate, "STAGE_BLOCK", 7)
    two = match_units(source, feed, RowSet(rows), EngineConfig(threads=2, **config))
    np.testing.assert_array_equal(one.top_index, two.top_index)
    np.testing.assert_allclose(one.top_r, two.top_r, atol=1e-6)


def test_the_gather_pass_reuses_one_batch_of_outputs_and_gets_every_value(tmp_path):
    """gather_activations through activations_into (a scratch batch reused, the last batch shorter)."""
    from precompute.match.inference import gather_activations

    source = tiny_source(tmp_path)
    rng = np.random.default_rng(6)
    n = 37
    images = [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(n)]
    feed = ArrayFeed([f"s{i}" for i in range(n)], images)
    full = [o.reshape(n, -1) for o in source.activations(images, feed.stimulus_ids)]
    layer_idx, flat = np.array([1, 0, 0, 1]), np.array([2, 107, 3, 0])
    values, _ = gather_activations(source, feed, layer_idx, flat, batch_size=8)
    expected = np.stack([full[lay][:, f] for lay, f in zip(layer_idx, flat, strict=True)])
    np.testing.assert_allclose(values, expected, rtol=1e-6)
