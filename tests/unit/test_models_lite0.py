"""EfficientNet-Lite0 end to end: export with every layer exposed, onnxruntime == torch, tables, CLI, controls."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from precompute.core.store import Store
from precompute.models import add, registry
from precompute.models.efficientnet_lite import build
from precompute.models.export import torch_layer_outputs
from precompute.models.preprocess import to_model_input
from precompute.models.sources import open_source


@pytest.fixture(scope="module")
def lite0_store(tmp_path_factory):
    """One temp store holding efficientnet-lite0 (exported once for this module), pixels and random-lite0."""
    store = Store(tmp_path_factory.mktemp("lite0") / "unitscope.duckdb")
    add.add_zoo_model(store, "efficientnet-lite0", "efficientnet-lite0")
    add.add_pixels(store, "pixels")
    add.add_random(store, "random-efficientnet-lite0", "efficientnet-lite0", seed=3)
    return store


def _images(n: int, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(size, size), dtype=np.uint8) for _ in range(n)]


def test_lite0_has_49_layers_and_6_74_m_units(lite0_store):
    with lite0_store.connect() as con:
        row = registry.read_model(con, "efficientnet-lite0")
        layers = registry.read_layers(con, "efficientnet-lite0")
        depth = con.execute("SELECT depth FROM layers WHERE model = 'efficientnet-lite0' ORDER BY layer_idx").fetchall()
    assert len(layers) == 49
    assert sum(la.units for la in layers) == 6_737_696 == row["total_units"]
    assert sum(la.op_type == "Clip" for la in layers) == 33  # ReLU6
    blocks = [la.layer for la in layers if la.layer.count(".") == 2]
    assert len(blocks) == 16 and blocks[0] == "blocks.0.0" and blocks[-1] == "blocks.6.0"
    assert layers[0].layer == "bn1.act" and layers[-1].layer == "bn2.act"
    assert depth[0][0] == 0.0 and depth[-1][0] == 1.0
    assert row["kind"] == "pretrained" and row["input_size"] == 224 and row["mean"] == [0.5, 0.5, 0.5]
    path = registry.data_folder(lite0_store) / row["onnx_path"]
    assert path.is_file() and path.name == f"{row['sha256']}.onnx"


def test_onnxruntime_equals_torch_for_every_layer(lite0_store):
    images = _images(2)
    with lite0_store.connect() as con:
        source = open_source(con, "efficientnet-lite0", lite0_store)
    got = source.activations(images, ["a", "b"])
    x = to_model_input(images, 224, 3, [0.5] * 3, [0.5] * 3)
    names, want = torch_layer_outputs(build(0), x)
    assert names == [la.layer for la in source.layers]
    for la, g, w in zip(source.layers, got, want, strict=True):
        assert g.shape == w.shape == (2, la.channels, la.height, la.width)
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, atol=1e-4 * max(1.0, float(np.abs(w).max())), rtol=0, err_msg=la.layer)
    # a subset of layers gives the same arrays
    sub = source.activations(images, ["a", "b"], [3, 48])
    np.testing.assert_array_equal(sub[0], got[3])
    np.testing.assert_array_equal(sub[1], got[48])


def test_random_control_has_lite0_shapes_and_is_deterministic_per_stimulus(lite0_store):
    with lite0_store.connect() as con:
        src = open_source(con, "random-efficientnet-lite0", lite0_store)
        ref = registry.read_layers(con, "efficientnet-lite0")
    assert [(la.layer, la.channels, la.height, la.width) for la in src.layers] == [
        (la.layer, la.channels, la.height, la.width) for la in ref
    ]
    idx = [0, 2, 48]
    both = src.activations(None, ["s1", "s2"], idx)
    alone = src.activations(None, ["s2"], idx)
    for a, b in zip(both, alone, strict=True):
        np.testing.assert_array_equal(a[1], b[0])
        assert not np.array_equal(a[0], a[1])
    assert [a.shape[1:] for a in both] == [(ref[i].channels, ref[i].height, ref[i].width) for i in idx]
    values = np.concatenate([a.ravel() for a in both]).astype(np.float64)
    assert abs(values.mean()) < 0.01 and abs(values.std() - 1.0) < 0.01


def test_pixels_control_is_the_grayscale_input(lite0_store):
    images = _images(3, size=224)
    with lite0_store.connect() as con:
        src = open_source(con, "pixels", lite0_store)
    (out,) = src.activations(images, ["a", "b", "c"])
    assert out.shape == (3, 1, 224, 224)
    np.testing.assert_allclose(out[:, 0], np.stack(images).astype(np.float64) / 255.0, atol=1e-7)


def _cli(store, *argv) -> int:
    from precompute.cli import models as cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    args = parser.parse_args(list(argv))
    return args.func(args, store)


def test_cli_show_and_list(lite0_store, capsys):
    assert _cli(lite0_store, "models", "show", "efficientnet-lite0") == 0
    out = capsys.readouterr().out
    assert "49 layers, 6,737,696 units (6.74 M)" in out
    assert "blocks.3.1.bn1.act" in out
    assert _cli(lite0_store, "models", "list") == 0
    out = capsys.readouterr().out
    assert "random-efficientnet-lite0" in out and "pixels" in out
