"""User ONNX files: --layers auto / explicit, channels-last graphs, bad input, storing, replacing, removing."""

from __future__ import annotations

import argparse

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from precompute.cli import models as models_cli
from precompute.core.catalog import has_model
from precompute.core.errors import UserError
from precompute.core.store import Store, read_steps_done
from precompute.models import add, registry
from precompute.models.onnx_import import detect_layout, import_onnx, shape_layout
from precompute.models.preprocess import to_model_input
from precompute.models.sources import open_source

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
        nodes,
        "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
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
    assert [(la.layer, la.channels, la.height, la.width) for la in imported.layers] == [
        ("m1", 4, 8, 8),
        ("c1", 4, 8, 8),
        ("f", 4, 1, 1),
    ]


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
    graph = helper.make_graph(
        nodes,
        "nhwc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 6, 3])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 6, 6, 5])],
        [numpy_helper.from_array(w, "W")],
    )
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
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
    )
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
        assert not has_model(con, "other")


def test_replace_and_remove_drop_every_derived_result(tmp_path):
    store = Store(tmp_path / "u.duckdb")
    path = residual_net(tmp_path / "m.onnx")
    add.add_onnx_model(store, "mine", path, mean=[0.5], std=[0.5])
    with store.step("fake-match") as con:
        con.execute("INSERT INTO matches VALUES ('d', 'mine', 's1', 1, 0, 0, 0, 0, 0.5)")
        con.execute(
            "INSERT INTO model_comparisons (dataset, region, model_a, model_b, metric, difference, p_value) "
            "VALUES ('d', 'IT', 'mine', 'x', 'm', 0.1, 0.5)"
        )
    add.add_onnx_model(store, "mine", path, layers="c1", mean=[0.5], std=[0.5], replace=True)
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM matches").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM model_comparisons").fetchone()[0] == 0
        assert [la.layer for la in registry.read_layers(con, "mine")] == ["c1"]
        onnx_path = registry.read_model(con, "mine")["onnx_path"]
    assert "model:mine" in read_steps_done(store.served_path)
    add.remove(store, "mine")
    with store.connect() as con:
        assert not has_model(con, "mine")
        assert con.execute("SELECT count(*) FROM layers").fetchone()[0] == 0
    assert not (tmp_path / onnx_path).exists()
    assert "model:mine" not in read_steps_done(store.served_path)
    with pytest.raises(UserError, match="no model named 'mine'"):
        add.remove(store, "mine")


# ------------------------------------------------------------------ per-layer layouts

WM = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32)


def mixed_net(path):
    """tf2onnx-like: channels-last input (N,16,16,3) -> Transpose -> Conv 3x3 -> Relu `relu` (N,4,14,14),
    channels-first -> Transpose back -> `out` (N,14,14,4), channels-last."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["xt", "W"], ["c"]),
        helper.make_node("Relu", ["c"], ["relu"]),
        helper.make_node("Transpose", ["relu"], ["out"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 16, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 14, 14, 4])],
        [numpy_helper.from_array(WM, "W")],
    )
    return _save(graph, path)


def raw_outputs(onnx_file, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every graph output of the file, run by onnxruntime directly, as float64 in its own layout."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    outs = session.run(None, {session.get_inputs()[0].name: x})
    return {o.name: a.astype(np.float64) for o, a in zip(session.get_outputs(), outs, strict=True)}


def unit_values(raw: np.ndarray, layout: str, c: int, y: int, x: int) -> np.ndarray:
    """Unit (c, y, x) of a raw 4-D output over the batch, indexed in the output's own layout."""
    return raw[:, c, y, x] if layout == "nchw" else raw[:, y, x, c]


def check_units_against_onnxruntime(store, model, images, layouts):
    """Every unit the source returns (activations and activations_into) equals the raw onnxruntime value."""
    with store.connect() as con:
        row = registry.read_model(con, model)
        src = open_source(con, model, store)
    x = to_model_input(images, row["input_size"], 3, row["mean"], row["std"], "nhwc")
    raw = raw_outputs(store.served_path.parent / row["onnx_path"], x)
    ids = [f"s{i}" for i in range(len(images))]
    got = src.activations(images, ids)
    dests = [np.full((len(images), la.units), np.nan, np.float32) for la in src.layers]
    into = src.activations_into(images, ids, None, dests)
    for la, g, g2 in zip(src.layers, got, into, strict=True):
        assert la.layout == layouts[la.layer]
        assert g.shape == (len(images), la.channels, la.height, la.width)
        for c in range(la.channels):
            for y in range(la.height):
                for xx in range(la.width):
                    want = unit_values(raw[la.output_name], la.layout, c, y, xx)
                    np.testing.assert_allclose(g[:, c, y, xx].astype(np.float64), want, rtol=1e-6, atol=1e-6)
                    np.testing.assert_allclose(
                        np.asarray(g2)[:, c, y, xx].astype(np.float64), want, rtol=1e-6, atol=1e-6
                    )
    return src, x


def test_mixed_layouts_are_decided_per_layer(tmp_path, capsys):
    """A channels-last input does not make every layer channels-last: relu (1,4,14,14) is C=4, H=W=14."""
    path = mixed_net(tmp_path / "mixed.onnx")
    auto = import_onnx(path)
    assert [(la.layer, la.channels, la.height, la.width, la.layout) for la in auto.layers] == [
        ("relu", 4, 14, 14, "nchw")
    ]
    imported = import_onnx(path, layers="relu,out")
    assert imported.layout == "nhwc"  # the model's (its input's)
    assert [(la.layer, la.channels, la.height, la.width, la.layout) for la in imported.layers] == [
        ("relu", 4, 14, 14, "nchw"),
        ("out", 4, 14, 14, "nhwc"),
    ]
    store = Store(tmp_path / "u.duckdb")
    add.add_onnx_model(store, "mixed", path, layers="relu,out", mean=[0.4, 0.5, 0.6], std=[0.2, 0.3, 0.25])
    images = [RNG.integers(0, 256, size=(16, 16, 3), dtype=np.uint8) for _ in range(3)]
    src, x = check_units_against_onnxruntime(store, "mixed", images, {"relu": "nchw", "out": "nhwc"})
    parser = argparse.ArgumentParser()
    models_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["models", "show", "mixed"])
    assert args.func(args, store) == 0
    shown = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["0", "relu", "Relu", "4", "14", "14", "784", "nchw"] in shown
    assert ["1", "out", "Transpose", "4", "14", "14", "784", "nhwc"] in shown
    # and against an independent float64 convolution of the channels-first image
    xt = x.astype(np.float64).transpose(0, 3, 1, 2)
    conv = np.zeros((3, 4, 14, 14))
    for dy in range(3):
        for dx in range(3):
            conv += np.einsum("oc,nchw->nohw", WM[:, :, dy, dx], xt[:, :, dy : dy + 14, dx : dx + 14])
    for g in src.activations(images, ["a", "b", "c"]):
        np.testing.assert_allclose(g, np.maximum(conv, 0), atol=1e-5)


def test_matching_finds_the_unit_at_its_own_coordinates_in_a_mixed_graph(tmp_path):
    """End to end through the engine: a site driven by relu unit (c=1, y=2, x=9), read from onnxruntime's
    raw channels-first tensor, is matched to that unit (and to the same unit of the channels-last `out`)."""
    from precompute.core.feeds import ArrayFeed
    from precompute.match.engine import EngineConfig, match_units
    from precompute.match.rows import RowSet

    path = mixed_net(tmp_path / "mixed.onnx")
    store = Store(tmp_path / "u.duckdb")
    add.add_onnx_model(store, "mixed", path, layers="relu,out", mean=[0.5], std=[0.5])
    rng = np.random.default_rng(11)
    n = 60
    images = [rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8) for _ in range(n)]
    with store.connect() as con:
        row = registry.read_model(con, "mixed")
        src = open_source(con, "mixed", store)
    raw = raw_outputs(tmp_path / row["onnx_path"], to_model_input(images, 16, 3, [0.5], [0.5], "nhwc"))
    site = raw["relu"][:, 1, 2, 9]
    assert site.std() > 0
    feed = ArrayFeed([f"s{i}" for i in range(n)], images)
    result = match_units(
        src,
        feed,
        RowSet(site[None, :]),
        EngineConfig(top_k=2, batch_size=16, device="cpu", max_stage=32, min_stage=32, threads=1),
    )
    relu = src.layers[0]
    units = relu.units
    hw = relu.height * relu.width
    decoded = []
    for flat in result.top_index[0]:
        layer = 0 if flat < units else 1
        rest = int(flat) - layer * units
        decoded.append((layer, rest // hw, rest % hw // relu.width, rest % relu.width))
    assert sorted(decoded) == [(0, 1, 2, 9), (1, 1, 2, 9)]
    np.testing.assert_allclose(result.top_r[0], 1.0, atol=1e-5)


def square_net(path, head: bool = True, fixed_reshape: bool = False):
    """Channels-first input (N,3,8,8) -> Conv 1x1 (8 channels) -> Relu `r` (1,8,8,8) -> Transpose -> Relu `t`
    (1,8,8,8) channels-last; both square and ambiguous. `head`: Flatten + Gemm of a fixed size after `t` (the
    whole graph runs at 8 only). `fixed_reshape`: a Reshape to (1,3,8,8) first (nothing runs at another size)."""
    w = np.random.default_rng(5).normal(size=(8, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x0" if fixed_reshape else "x", "W"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Transpose", ["r"], ["rt"], perm=[0, 2, 3, 1]),
        helper.make_node("Relu", ["rt"], ["t"]),
    ]
    inits = [numpy_helper.from_array(w, "W")]
    if fixed_reshape:
        nodes.insert(0, helper.make_node("Reshape", ["x", "S"], ["x0"]))
        inits.append(numpy_helper.from_array(np.array([1, 3, 8, 8], np.int64), "S"))
    out, dims = "t", [1, 8, 8, 8]
    if head:
        nodes += [helper.make_node("Flatten", ["t"], ["f"]), helper.make_node("Gemm", ["f", "G"], ["logits"])]
        inits.append(numpy_helper.from_array(np.ones((512, 2), np.float32), "G"))
        out, dims = "logits", [1, 2]
    graph = helper.make_graph(
        nodes,
        "square",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, dims)],
        inits,
    )
    return _save(graph, path)


def test_ambiguous_square_layers_are_resolved_by_a_second_input_size(tmp_path):
    """(1,8,8,8) could be either layout: the graph, cut before its fixed-size head, is run at another input
    size, where only the spatial dimensions change."""
    path = square_net(tmp_path / "sq.onnx")
    imported = import_onnx(path, layers="r,t")
    assert imported.layout == "nchw"
    assert [(la.layer, la.layout) for la in imported.layers] == [("r", "nchw"), ("t", "nhwc")]
    store = Store(tmp_path / "u.duckdb")
    add.add_onnx_model(store, "sq", path, layers="r,t", mean=[0.5], std=[0.5])
    with store.connect() as con:
        assert [la.layout for la in registry.read_layers(con, "sq")] == ["nchw", "nhwc"]
        row = registry.read_model(con, "sq")
        src = open_source(con, "sq", store)
    images = [RNG.integers(0, 256, size=(8, 8, 3), dtype=np.uint8) for _ in range(2)]
    raw = raw_outputs(tmp_path / row["onnx_path"], to_model_input(images, 8, 3, [0.5], [0.5], "nchw"))
    r, t = src.activations(images, ["a", "b"])
    np.testing.assert_array_equal(r.astype(np.float64), raw["r"])
    np.testing.assert_array_equal(t.astype(np.float64), raw["t"].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(r, t)  # t is r transposed: the same units at the same coordinates


def test_ambiguous_layers_fall_back_to_the_model_layout_when_no_other_size_runs(tmp_path, caplog):
    path = square_net(tmp_path / "fixed.onnx", head=False, fixed_reshape=True)
    with caplog.at_level("WARNING"):
        imported = import_onnx(path, layers="r,t")
    assert [(la.layer, la.layout) for la in imported.layers] == [("r", "nchw"), ("t", "nchw")]
    assert "cannot tell channels-first from channels-last" in caplog.text


def test_a_declared_layout_wins_for_every_layer(tmp_path):
    path = mixed_net(tmp_path / "mixed.onnx")
    as_nhwc = import_onnx(path, layers="relu,out", layout="nhwc")
    assert as_nhwc.layout == "nhwc"
    assert [(la.layer, la.channels, la.height, la.width, la.layout) for la in as_nhwc.layers] == [
        ("relu", 14, 4, 14, "nhwc"),
        ("out", 4, 14, 14, "nhwc"),
    ]
    as_nchw = import_onnx(path, layers="relu,out", layout="nchw")
    assert as_nchw.layout == "nchw"
    assert [(la.layer, la.channels, la.height, la.width, la.layout) for la in as_nchw.layers] == [
        ("relu", 4, 14, 14, "nchw"),
        ("out", 14, 14, 4, "nchw"),
    ]
    sq = import_onnx(square_net(tmp_path / "sq.onnx"), layers="r,t", layout="nchw")
    assert [la.layout for la in sq.layers] == ["nchw", "nchw"]  # no probe overrides it


def test_shape_layout_tells_only_unambiguous_shapes():
    assert shape_layout((1, 4, 14, 14)) == "nchw" and shape_layout((1, 14, 14, 4)) == "nhwc"
    assert shape_layout((1, 8, 8, 8)) is None and shape_layout((1, 8, 7, 6)) is None
    assert shape_layout((1, 64, 1, 1)) == "nchw" and shape_layout((1, 10)) is None
