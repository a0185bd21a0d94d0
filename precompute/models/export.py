"""torch -> ONNX with every layer exposed as a graph output (DESIGN.md, Contracts: Layers).

The layer rule: the output of every activation function (ReLU, ReLU6, GELU, SiLU, Hardswish, ...) and
of every block (the module's output: the residual Add, or the block's last op where it has none), in
the order the network computes them, named by torch module path (`blocks.3.1.bn1.act`, `blocks.3.1`).

How: `LayerTap` wraps the network and puts forward hooks on those modules; its forward returns every
hooked output as a tuple, so `torch.onnx.export` makes each one a graph output, named after its layer.
Details of the rule, chosen here and documented in docs/add-your-model.md:
- a module called more than once (torchvision ResNet's `relu`) gives one layer per call: `path`, then
  `path:1`, `path:2`, ...;
- a block whose output is the very tensor of an activation already exposed (ResNet: relu after the
  Add) is not exposed twice; the activation's name is kept;
- activations inside squeeze-and-excitation gates (per-channel scalars, not features) are left out;
- the global pool and the logits are not layers;
- activations applied as functions (`F.relu(x)` in a forward) are invisible to hooks: such a model
  needs its own block/activation list, or can be added as an ONNX file with `--layers`.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from precompute.models.base import LayerInfo

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Class names of activation-function modules (torch.nn and timm's own variants).
ACTIVATION_CLASSES = frozenset(
    {
        "ReLU",
        "ReLU6",
        "GELU",
        "GELUTanh",
        "QuickGELU",
        "SiLU",
        "Swish",
        "SwishMe",
        "Hardswish",
        "HardSwish",
        "HardSwishMe",
        "LeakyReLU",
        "ELU",
        "SELU",
        "CELU",
        "Mish",
        "MishMe",
        "HardMish",
        "HardMishMe",
        "PReLU",
        "Tanh",
        "Softplus",
        "RReLU",
    }
)
#: Class names of blocks (residual units, inception/dense/NASNet cells, MobileNet/EfficientNet blocks).
BLOCK_PATTERN = re.compile(
    r"Block|Bottleneck|InvertedResidual|DepthwiseSeparable|DenseLayer|Transition|"
    r"Inception[A-Z]|Reduction[A-Z]|Mixed|Cell"
)
#: Modules whose activations are gates, not features (squeeze-and-excitation).
GATE_PATTERN = re.compile(r"SqueezeExcit|SEModule|EffectiveSE|SqueezeExcite|SEBlock|SELayer")

INPUT_NAME = "input"


@dataclass(frozen=True)
class ExportResult:
    """What an export produced: the exposed layers, the parameter count and how long it took."""

    layers: list[LayerInfo]
    parameters: int
    seconds: float
    method: str  # "dynamo" or "torchscript"


def tap_points(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module, str]]:
    """(module path, module, "activation" | "block") for every module the layer rule exposes."""
    points = []
    gates: list[str] = []
    for path, module in model.named_modules():
        cls = type(module).__name__
        if GATE_PATTERN.search(cls):
            gates.append(path + ".")
        if cls in ACTIVATION_CLASSES:
            if any(path.startswith(g) for g in gates):
                continue
            points.append((path, module, "activation"))
        elif path and BLOCK_PATTERN.search(cls):
            points.append((path, module, "block"))
    return points


def _shape_to_chw(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """Layer output shape (with batch) -> (C, H, W) by the Units contract; None when not a layer shape."""
    if len(shape) == 4:
        return shape[1], shape[2], shape[3]
    if len(shape) == 3:  # (batch, tokens, dims): tokens are rows, dims are channels
        return shape[2], shape[1], 1
    if len(shape) == 2:
        return shape[1], 1, 1
    return None


def make_layer_tap(model: torch.nn.Module):
    """Wrap `model` in a module whose forward returns every exposed layer's output (a tuple)."""
    import torch

    class LayerTap(torch.nn.Module):
        """forward(x) -> tuple of layer outputs; `names` are their layer names (after a forward)."""

        def __init__(self, net: torch.nn.Module):
            super().__init__()
            self.net = net
            self.names: list[str] = []
            self._outputs: list[torch.Tensor] = []
            self._calls: dict[str, int] = {}
            self._handles = []
            for mod in net.modules():
                if hasattr(mod, "inplace") and isinstance(mod.inplace, bool):
                    mod.inplace = False  # a hooked output must not be overwritten by a later in-place op
            for path, module, _kind in tap_points(net):
                self._handles.append(module.register_forward_hook(self._hook(path)))

        def _hook(self, path: str):
            def hook(_module, _inputs, output):
                if not isinstance(output, torch.Tensor) or _shape_to_chw(tuple(output.shape)) is None:
                    return
                n = self._calls.get(path, 0)
                self._calls[path] = n + 1
                if any(output is seen for seen in self._outputs):
                    return
                self.names.append(path if n == 0 else f"{path}:{n}")
                self._outputs.append(output)

            return hook

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            self.names, self._outputs, self._calls = [], [], {}
            self.net(x)
            out = tuple(self._outputs)
            self._outputs = []
            return out

        def remove_hooks(self) -> None:
            for h in self._handles:
                h.remove()
            self._handles = []

    return LayerTap(model).eval()


def torch_layer_outputs(model: torch.nn.Module, x: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """Layer names and outputs of `model` (eval mode, eager torch) for a float32 NCHW batch."""
    import torch

    tap = make_layer_tap(model.eval())
    try:
        with torch.no_grad():
            outs = tap(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return list(tap.names), [o.detach().cpu().numpy() for o in outs]
    finally:
        tap.remove_hooks()


def count_parameters(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def export_with_layers(
    model: torch.nn.Module,
    input_size: int,
    path: Path,
    *,
    in_channels: int = 3,
    dynamo: bool = True,
) -> ExportResult:
    """Export `model` to one self-contained ONNX file at `path`, every layer a graph output.

    The input is `input` (batch, in_channels, S, S) with a dynamic batch dimension; outputs are named
    by layer. dynamo export (torch.export) is the default; if it fails, the TorchScript exporter is
    the documented fallback (same graph semantics, older tracer) and the reason is logged.
    """
    import torch

    t0 = time.perf_counter()
    model = model.eval()
    tap = make_layer_tap(model)
    example = torch.zeros(2, in_channels, input_size, input_size)
    try:
        with torch.no_grad():
            outs = tap(example)
        names = list(tap.names)
        if not names:
            raise RuntimeError("the layer rule found no activation or block modules in this model")
        shapes = [tuple(o.shape) for o in outs]
        path.parent.mkdir(parents=True, exist_ok=True)
        method = "dynamo" if dynamo else "torchscript"
        try:
            _export(tap, example, path, names, dynamo=dynamo)
        except Exception as exc:
            if not dynamo:
                raise
            log.warning(
                "dynamo export failed (%s: %s); falling back to the TorchScript exporter",
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            method = "torchscript"
            _export(tap, example, path, names, dynamo=False)
        if tap.names != names:
            raise RuntimeError("the exported forward exposed different layers than the eager one")
    finally:
        tap.remove_hooks()
    op_types = onnx_output_op_types(path)
    layers = []
    for i, (name, shape) in enumerate(zip(names, shapes, strict=True)):
        c, h, w = _shape_to_chw(shape)
        layers.append(LayerInfo(i, name, c, h, w, op_types.get(name, ""), name))
    seconds = time.perf_counter() - t0
    log.info(
        "exported %d layers (%d units) with %s in %.1f s", len(layers), sum(la.units for la in layers), method, seconds
    )
    return ExportResult(layers, count_parameters(model), seconds, method)


def _export(tap, example, path: Path, names: list[str], *, dynamo: bool) -> None:
    import torch

    kwargs = dict(input_names=[INPUT_NAME], output_names=names)
    if dynamo:
        batch = torch.export.Dim("batch", min=1, max=4096)
        torch.onnx.export(
            tap,
            (example,),
            str(path),
            dynamo=True,
            external_data=False,
            dynamic_shapes={"x": {0: batch}},
            opset_version=18,
            verbose=False,
            **kwargs,
        )
        _strip_stack_traces(path)
    else:
        torch.onnx.export(
            tap,
            (example,),
            str(path),
            dynamo=False,
            opset_version=17,
            dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in names}},
            **kwargs,
        )


def _strip_stack_traces(path: Path) -> None:
    """Remove the Python stack traces the dynamo exporter writes into each node's metadata: they name the
    checkout's folder, so the same model exported from two checkouts would get two content hashes (the
    ONNX file is stored under its SHA-256). The graph, weights and every other field stay as exported."""
    import onnx  # heavy: only the exporter needs it

    model = onnx.load(str(path), load_external_data=False)
    for node in model.graph.node:
        keep = [p for p in node.metadata_props if "stack_trace" not in p.key]
        if len(keep) != len(node.metadata_props):
            del node.metadata_props[:]
            node.metadata_props.extend(keep)
    onnx.save(model, str(path))


def onnx_output_op_types(path: Path) -> dict[str, str]:
    """Graph output name -> op type of the node producing it (following Identity nodes back)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    producer = {out: node for node in model.graph.node for out in node.output}
    result = {}
    for out in model.graph.output:
        node = producer.get(out.name)
        while node is not None and node.op_type == "Identity":
            node = producer.get(node.input[0])
        result[out.name] = node.op_type if node is not None else ""
    return result
