"""Export of untrained torchvision and timm architectures: every exposed layer, onnxruntime == torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from precompute.core.errors import UserError
from precompute.core.store import Store
from precompute.models import add, registry, zoo
from precompute.models.export import export_with_layers, tap_points, torch_layer_outputs
from precompute.models.sources import OnnxSource, to_nchw


def _compare(model, size: int, tmp_path, in_channels: int = 3):
    """Export, then compare onnxruntime's NCHW outputs with eager torch for a batch of 2 images."""
    result = export_with_layers(model, size, tmp_path / "m.onnx", in_channels=in_channels)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, size=(size + 8, size + 8, 3), dtype=np.uint8) for _ in range(2)]
    src = OnnxSource(
        "m",
        tmp_path / "m.onnx",
        result.layers,
        input_size=size,
        in_channels=in_channels,
        mean=[0.5] * 3,
        std=[0.25] * 3,
    )
    got = src.activations(images, ["a", "b"])
    from precompute.models.preprocess import to_model_input

    names, want = torch_layer_outputs(model, to_model_input(images, size, in_channels, [0.5] * 3, [0.25] * 3))
    assert names == [la.layer for la in result.layers]
    for la, g, w in zip(result.layers, got, want, strict=True):
        w = to_nchw(w)
        assert g.shape == w.shape == (2, la.channels, la.height, la.width), la.layer
        np.testing.assert_allclose(g, w, atol=1e-4 * max(1.0, float(np.abs(w).max())), rtol=0, err_msg=la.layer)
    return result


def test_torchvision_resnet18_untrained(tmp_path):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    result = _compare(model, 64, tmp_path)
    names = [la.layer for la in result.layers]
    # relu is called twice per BasicBlock; the block output is the second call's tensor, exposed once
    assert names[:3] == ["relu", "layer1.0.relu", "layer1.0.relu:1"]
    assert "layer1.0" not in names
    assert len(names) == 1 + 8 * 2
    assert all(la.op_type == "Relu" for la in result.layers)
    # no stack traces (they name the checkout's folder): the same model hashes the same from any checkout
    import onnx

    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    assert not [p.key for n in graph.node for p in n.metadata_props if "stack_trace" in p.key]
    assert result.method.startswith("dynamo") and b"export.py" not in (tmp_path / "m.onnx").read_bytes()


def test_timm_vit_untrained_tokens_are_rows(tmp_path):
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False).eval()
    size = model.default_cfg["input_size"][-1]
    result = _compare(model, size, tmp_path)
    blocks = [la for la in result.layers if la.layer.startswith("blocks.") and la.layer.count(".") == 1]
    assert blocks, [la.layer for la in result.layers]
    tokens = (size // model.patch_embed.patch_size[0]) ** 2 + model.num_prefix_tokens
    assert all((la.channels, la.height, la.width) == (model.embed_dim, tokens, 1) for la in blocks)
    assert any(la.op_type == "Gelu" or "act" in la.layer for la in result.layers)


def test_squeeze_excitation_gates_are_not_layers():
    import torchvision

    model = torchvision.models.mobilenet_v3_small(weights=None)
    se = [p + "." for p, m in model.named_modules() if type(m).__name__ == "SqueezeExcitation"]
    paths = [p for p, _m, _k in tap_points(model)]
    assert len(se) == 9
    assert not [p for p in paths if any(p.startswith(s) for s in se)]
    assert "features.1.block.1" not in paths  # the SE module is no block either
    assert "features.4.block.0.2" in paths  # Hardswish after an expansion conv
    assert "features.4" in paths  # an InvertedResidual block


def test_untrained_zoo_model_is_seeded_and_recorded(tmp_path):
    store = Store(tmp_path / "u.duckdb")
    add.add_zoo_model(store, "untrained-resnet18", "resnet18", untrained=True, seed=5)
    with store.connect() as con:
        row = registry.read_model(con, "untrained-resnet18")
    assert row["kind"] == "untrained" and row["reference_model"] == "resnet18" and row["imagenet_top1"] is None
    torch.manual_seed(5)
    a = zoo.build(zoo.ZOO["resnet18"], pretrained=False, seed=5).state_dict()["conv1.weight"]
    b = zoo.build(zoo.ZOO["resnet18"], pretrained=False, seed=5).state_dict()["conv1.weight"]
    assert torch.equal(a, b)


def test_local_weights_file_loads_and_a_bad_one_names_keys(tmp_path):
    import torchvision

    entry = zoo.ZOO["resnet18"]
    good = torchvision.models.resnet18(weights=None).state_dict()
    torch.save({"state_dict": good}, tmp_path / "good.pth")
    model = zoo.build(entry, weights=tmp_path / "good.pth")
    assert torch.equal(model.state_dict()["fc.bias"], good["fc.bias"])
    bad = dict(good)
    bad.pop("layer4.1.bn2.running_mean")
    bad["fc.weight"] = torch.zeros(10, 512)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(UserError, match=r"layer4\.1\.bn2\.running_mean.*\n.*fc\.weight"):
        zoo.build(entry, weights=tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot read"):
        zoo.build(entry, weights=tmp_path / "junk.pth")
