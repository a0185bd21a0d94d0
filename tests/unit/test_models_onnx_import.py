"""User ONNX files: --layers auto / explicit, channels-last graphs, bad input, storing, replacing, removing."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from precompute.errors import UserError
from precompute.models import add, registry
from precompute.models.onnx_import import detect_layout, import_onnx
from precompute.models.preprocess import to_model_input
from precompute.models.sources import open_source
from precompute.store import Store, read_steps_done

RNG = np.random.default_rng(7)
W1 = RNG.normal(size=(4, 3, 1, 1)).astype(np.float32)
W2 = RNG.normal(size=(4, 4, 1, 1)).astype(np.float32)
B2 = RNG.normal(size=(1, 4, 1, 1)).astype(np.float32)
W3 = RNG.normal(size=(2, 4)).astype(np.float32)


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def residual_net(path, dims=("batch", 3, 8, 8)):
    """conv -> relu (r1) -> conv + bias -> residual add (a1) -> x*sigmoid(x) (m1) -> pool -> gemm (logits)."""
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["c1"]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "W2"], ["c2"]),
        helper.make_node("Add", ["c2", "B2"], ["c2b"]),  # a bias add: not a block
        helper.make_node("Add", ["r1", "c2b"], ["a1"]),
        helper.make_node("Sigmoid", ["a1"], ["s1"]),
        helper.make_node("Mul", ["a1", "s1"], ["m1"]),
        helper.make_node("GlobalAveragePool", ["m1"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "W3"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [dims[0], 2])],
        [numpy_helper.from_array(a, n) for a, n in ((W1, "W1"), (W2, "W2"), (B2, "B2"), (W3, "W3"))],
    )
    return _save(graph, path)


def reference(x: np.ndarray) -> dict[str, np.ndarray]:
    """float64 numpy version of residual_net for an NCHW batch."""
    x = x.astype(np.float64)
    c1 = np.einsum("oc,nchw->nohw", W1[:, :, 0, 0], x)
    r1 = np.maximum(c1, 0)
    c2b = np.einsum("oc,nchw->nohw", W2[:, :, 0, 0], r1) + B2
    a1 = r1 + c2b
    m1 = a1 / (1 + np.exp(-a1))
    return {"r1": r1, "a1": a1, "m1": m1}


def test_auto_finds_activations_and_residual_adds(tmp_path):
    imported = import_onnx(residual_net(tmp_path / "m.onnx"))
    assert [la.layer for la in imported.layers] == ["r1", "a1", "m1"]
    assert [la.op_type for la in imported.layers] == ["Relu", "Add", "Mul"]
    assert all((la.channels, la.height, la.width) == (4, 8, 8) for la in imported.layers)
    assert imported.layout == "nchw" and imported.input_size == 8 and imported.in_channels == 3
    assert imported.parameters == W1.size + W2.size + B2.size + W3.size
    outputs = [o.name for o in onnx.load_model_from_string(imported.model_bytes).graph.output]
    assert outputs == ["r1", "a1", "m1"]


def test_stored_onnx_model_matches_a_float64_reference(tmp_path):
    store = Store(tmp_path / "db" / "u.duckdb")
    add.add_onnx_model(store, "mine", residual_net(tmp_path / "m.onnx"), mean=[0.4, 0.5, 0.6], std=[0.2, 0.3, 0.25])
    images = [RNG.integers(0, 256, size=(8, 8, 3), dtype=np.uint8), RNG.integers(0, 256, size=(16, 16), dtype=np.uint8)]
    with store.connect() as con:
        row = registry.read_model(con, "mine")
        src = open_source(con, "mine", store)
    assert row["kind"] == "onnx" and row["total_units"] == 3 * 4 * 8 * 8
    assert (tmp_path / "db" / row["onnx_path"]).is_file()
    got = src.activations(images, ["a", "b"])
    want = reference(to_model_input(images, 8, 3, [0.4, 0.5, 0.6], [0.2, 0.3, 0.25]))
    for la, g in zip(src.layers, got, strict=True):
        np.testing.assert_allclose(g, want[la.layer], atol=1e-5, rtol=1e-5)


def test_explicit_layers_in_the_given_order(tmp_path):
    imported = import_onnx(residual_net(tmp_path / "m.onnx"), layers="m1, c1,f")
    assert [(la.layer, la.channels, la.height, la.width) for la in imported.layers] == \
        [("m1", 4, 8, 8), ("c1", 4, 8, 8), ("f", 4, 1, 1)]


def test_unknown_layer_name_lists_valid_ones(tmp_path):
    with pytest.raises(UserError) as err:
        import_onnx(residual_net(tmp_path / "m.onnx"), layers="r1,rl,a2")
    msg = str(err.value)
    assert "'rl'" in msg and "'a2'" in msg and "r1, a1, m1" in msg


def test_channels_last_graph_is_detected(tmp_path):
    w = RNG.normal(size=(5, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["xt", "W"], ["c"]),
        helper.make_node("Transpose", ["c"], ["ct"], perm=[0, 2, 3, 1]),
        helper.make_node("Relu", ["ct"], ["r"]),
    ]
    graph = helper.make_graph(nodes, "nhwc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 6, 3])],
                              [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 6, 6, 5])],
                              [numpy_helper.from_array(w, "W")])
    path = _save(graph, tmp_path / "nhwc.onnx")
    imported = import_onnx(path)
    assert imported.layout == "nhwc"
    assert [(la.layer, la.channels, la.height, la.width) for la in imported.layers] == [("r", 5, 6, 6)]
    store = Store(tmp_path / "u.duckdb")
    add.add_onnx_model(store, "tf-like", path, mean=[0.0], std=[1.0])
    img = RNG.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    with store.connect() as con:
        (out,) = open_source(con, "tf-like", store).activations([img], ["a"])
    x = img.astype(np.float64).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(out[0], np.maximum(np.einsum("oc,chw->ohw", w[:, :, 0, 0], x), 0), atol=1e-5)


def test_detect_layout_from_layer_shapes():
    assert detect_layout("nchw", [(1, 32, 16, 16), (1, 64, 8, 8)]) == "nchw"
    assert detect_layout("nchw", [(1, 16, 16, 32), (1, 8, 8, 64), (1, 10)]) == "nhwc"
    assert detect_layout("nhwc", [(1, 32, 16, 16)]) == "nhwc"


def test_bad_files_are_clear_errors(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01 this is not protobuf \xff" * 10)
    with pytest.raises(UserError, match=r"not a readable ONNX file|no nodes"):
        import_onnx(tmp_path / "junk.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(UserError, match="no nodes"):
        import_onnx(tmp_path / "empty.onnx")
    with pytest.raises(UserError, match="does not exist"):
        import_onnx(tmp_path / "missing.onnx")
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "flat",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])])
    with pytest.raises(UserError, match="no 4-D image input"):
        import_onnx(_save(graph, tmp_path / "flat.onnx"))


def test_dynamic_spatial_size_needs_input_size(tmp_path):
    path = residual_net(tmp_path / "dyn.onnx", dims=("batch", 3, "h", "w"))
    with pytest.raises(UserError, match="--input-size"):
        import_onnx(path)
    imported = import_onnx(path, input_size=12)
    assert imported.input_size == 12 and imported.layers[0].height == 12
    with pytest.raises(UserError, match="differs"):
        import_onnx(residual_net(tmp_path / "m.onnx"), input_size=12)


def test_duplicate_name_is_refused_and_nothing_stored_changes(tmp_path):
    store = Store(tmp_path / "u.duckdb")
    path = residual_net(tmp_path / "m.onnx")
    add.add_onnx_model(store, "mine", path, mean=[0.5], std=[0.5])
    before = store.served_path.read_bytes()
    with pytest.raises(UserError, match=r"already exists.*--replace"):
        add.add_onnx_model(store, "mine", path, layers="c1", mean=[0.5], std=[0.5])
    with pytest.raises(UserError, match="no tensor named"):
        add.add_onnx_model(store, "other", path, layers="nope", mean=[0.5], std=[0.5])
    assert store.served_path.read_bytes() == before
    with store.connect() as con:
        assert [la.layer for la in registry.read_layers(con, "mine")] == ["r1", "a1", "m1"]
        assert not registry.model_exists(con, "other")


def test_replace_and_remove_drop_every_derived_result(tmp_path):
    store = Store(tmp_path / "u.duckdb")
    path = residual_net(tmp_path / "m.onnx")
    add.add_onnx_model(store, "mine", path, mean=[0.5], std=[0.5])
    with store.step("fake-match") as con:
        con.execute("INSERT INTO matches VALUES ('d', 'mine', 's1', 1, 0, 0, 0, 0, 0.5)")
        con.execute("INSERT INTO model_comparisons VALUES ('d', 'IT', 'mine', 'x', 'm', 0.1, 0.5)")
    add.add_onnx_model(store, "mine", path, layers="c1", mean=[0.5], std=[0.5], replace=True)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM matches").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM model_comparisons").fetchone()[0] == 0
        assert [la.layer for la in registry.read_layers(con, "mine")] == ["c1"]
        onnx_path = registry.read_model(con, "mine")["onnx_path"]
    assert "model:mine" in read_steps_done(store.served_path)
    add.remove(store, "mine")
    with store.connect() as con:
        assert not registry.model_exists(con, "mine")
        assert con.execute("SELECT count(*) FROM layers").fetchone()[0] == 0
    assert not (tmp_path / onnx_path).exists()
    assert "model:mine" not in read_steps_done(store.served_path)
    with pytest.raises(UserError, match="no model named 'mine'"):
        add.remove(store, "mine")
