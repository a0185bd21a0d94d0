"""The zoo registry (the paper's Table 1), demo steps, and the CLI's bad-input errors."""

from __future__ import annotations

import argparse

import pytest

from precompute.core.errors import UserError
from precompute.core.store import Store
from precompute.jobs.demo import model_steps as demo_steps
from precompute.models import zoo

PAPER_TOP1 = {
    "alexnet": 57.7,
    "vgg16": 71.5,
    "nasnet-mobile": 74.0,
    "mobilenet-1.4": 75.0,
    "xception": 79.0,
    "densenet121": 74.5,
    "densenet169": 75.9,
    "resnet50": 75.2,
    "resnet101": 76.4,
    "resnet152": 77.8,
    "inception-resnet-v2": 80.4,
    "inception-v4": 80.2,
    "nasnet-large": 82.7,
    "pnasnet-large": 82.9,
}


def test_the_papers_14_models_are_in_the_zoo_with_their_top1():
    in_paper = {e.name: e.imagenet_top1 for e in zoo.ZOO.values() if e.in_paper}
    assert in_paper == PAPER_TOP1


def test_zoo_constructors_exist():
    import timm
    import torchvision

    for e in zoo.ZOO.values():
        if e.library == "torchvision":
            assert callable(getattr(torchvision.models, e.constructor)), e.name
            assert e.weights.split(".")[0] in dir(torchvision.models), e.name
        elif e.library in ("timm", "wheel"):
            assert timm.is_model(e.constructor), e.name
        if e.library == "timm":
            assert timm.list_pretrained(f"{e.constructor}.{e.weights}"), e.name


def test_unknown_zoo_name_lists_close_names():
    with pytest.raises(UserError, match="close names: resnet50"):
        zoo.get_entry("resnet-50")
    with pytest.raises(UserError, match="timm has no model"):
        zoo.get_entry("timm:resnet9999x")
    assert zoo.get_entry("timm:test_vit").input_size == 160


def test_a_model_no_library_provides_says_how_to_add_it_as_onnx():
    with pytest.raises(UserError, match=r"nasnet-mobile.*--onnx FILE"):
        zoo.build(zoo.ZOO["nasnet-mobile"])


def test_demo_steps():
    assert [s.name for s in demo_steps("quick")] == ["model:efficientnet-lite0"]
    names = [s.name for s in demo_steps("default")]
    # build order: Lite0 and its controls (a control's reference before it), then Lite1 and Lite2
    assert names == [
        f"model:{m}"
        for m in (
            "efficientnet-lite0",
            "pixels",
            "random-efficientnet-lite0",
            "untrained-efficientnet-lite0",
            "efficientnet-lite1",
            "efficientnet-lite2",
        )
    ]
    assert [s.name for s in demo_steps("full")] == names


def _cli(store, *argv) -> int:
    from precompute.cli import models as cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    args = parser.parse_args(list(argv))
    return args.func(args, store)


def test_cli_errors_touch_nothing(tmp_path, capsys):
    store = Store(tmp_path / "u.duckdb")
    assert _cli(store, "models", "add", "pixels-64", "--control", "pixels") == 0
    assert "4,096 units" in capsys.readouterr().out
    before = store.served_path.read_bytes()
    bad = [
        (["pixels-64", "--control", "pixels"], "already exists"),
        (["x", "--zoo", "resnet-50"], "close names"),
        (["x", "--zoo", "resnet18", "--layers", "auto"], "--layers"),
        (["x", "--control", "random"], "--reference"),
        (["x", "--control", "random", "--reference", "efficientnet-lite0"], "no model named"),
        (["x", "--onnx", str(tmp_path / "none.onnx")], "does not exist"),
        (["x", "--zoo", "resnet18", "--untrained", "--weights", str(tmp_path / "w.pth")], "exclude"),
    ]
    for argv, message in bad:
        with pytest.raises(UserError, match=message):
            _cli(store, "models", "add", *argv)
    with pytest.raises(UserError, match="no model named"):
        _cli(store, "models", "remove", "pixels-6")
    assert store.served_path.read_bytes() == before
    assert _cli(store, "models", "zoo") == 0
    assert "pnasnet-large" in capsys.readouterr().out
