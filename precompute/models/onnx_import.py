"""A lab's own ONNX file -> an ONNX graph with the chosen layers as graph outputs, and its layer table.

`--layers auto` applies the layer rule by op type (DESIGN.md, Contracts): the output of every
activation (Relu, Clip = ReLU6, LeakyRelu, Elu, Selu, Celu, PRelu, Gelu, HardSwish, Mish, Softplus, and
the decomposed SiLU x*Sigmoid(x), HardSwish x*HardSigmoid(x) and GELU x*0.5*(1+erf(..)) patterns) and
of every block, recognised as a residual Add (both inputs computed tensors) or a Concat of computed
feature maps (inception and dense blocks); in graph order, named by tensor name. A block's last op
without an Add or Concat cannot be recognised from a plain graph: name such tensors explicitly.
`--layers a,b,c` takes exactly those tensors, in that order.

Layouts are decided per layer, since one graph may hold both (a channels-last input transposed to
channels-first for its convolutions, as tf2onnx exports do). A 4-D output (1, a, b, c) is channels-first
when b == c != a and channels-last when a == b != c. Otherwise (a == b == c, non-square maps) the graph is
run a second time at another input size, cut to those layers: the spatial dimensions change with the
input size and the channel dimension does not. Where that cannot decide (the graph does not run at
another size, or nothing changes), the model's layout applies: the input's (channels-last
(N, H, W, 3) -> nhwc), or nhwc for a channels-first input whose unambiguous layers are mostly
channels-last. `--layout nchw|nhwc` declares the layout of every layer and wins over detection.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from precompute.core.errors import UserError
from precompute.models.base import LayerInfo

log = logging.getLogger(__name__)

ACTIVATION_OPS = frozenset(
    {
        "Relu",
        "Clip",
        "LeakyRelu",
        "Elu",
        "Selu",
        "Celu",
        "PRelu",
        "Gelu",
        "HardSwish",
        "Mish",
        "Softplus",
        "ThresholdedRelu",
    }
)
#: f(x) = x * gate(x): SiLU (Sigmoid) and HardSwish (HardSigmoid) as exported by older opsets.
GATE_OPS = frozenset({"Sigmoid", "HardSigmoid"})
BLOCK_OPS = frozenset({"Add", "Concat"})


@dataclass(frozen=True)
class ImportedOnnx:
    """The rewritten graph (bytes) and what it exposes."""

    model_bytes: bytes
    layers: list[LayerInfo]
    input_size: int
    in_channels: int
    #: the model's layout (the input's, or --layout); each layer's own is LayerInfo.layout
    layout: str
    parameters: int


def import_onnx(
    path: Path | str,
    *,
    input_size: int | None = None,
    layers: str = "auto",
    layout: str | None = None,
) -> ImportedOnnx:
    """Read a user's ONNX file, pick its layers and expose them; UserError for every bad input."""
    import onnx

    model = load_onnx(path)
    graph = model.graph
    inp, in_channels, in_layout, size = image_input(model, input_size)
    _set_input_shape(inp, size, in_channels, in_layout)
    types = tensor_types(model)
    if layers.strip() == "auto":
        names = [n for n in auto_layer_names(model) if types.get(n) == onnx.TensorProto.FLOAT]
        if not names:
            raise UserError(
                "--layers auto found no activation, residual Add or Concat tensors in this graph; "
                "name the tensors to use with --layers T1,T2,..."
            )
    else:
        names = [n.strip() for n in layers.split(",") if n.strip()]
        check_tensor_names(model, names)
        not_float = [n for n in names if types.get(n, onnx.TensorProto.FLOAT) != onnx.TensorProto.FLOAT]
        if not_float:
            raise UserError(f"layers must be float tensors; these are not: {', '.join(not_float)}")
    del graph.output[:]
    graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    shapes = _probe_shapes(model, inp.name, size, in_channels, in_layout)
    keep = [n for n in names if len(shapes[n]) in (2, 3, 4)]
    if layers.strip() != "auto" and len(keep) != len(names):
        bad = [f"{n} {shapes[n]}" for n in names if n not in keep]
        raise UserError(f"layers must have 2, 3 or 4 dimensions (batch first); these do not: {', '.join(bad)}")
    if not keep:
        raise UserError("no candidate layer has 2, 3 or 4 dimensions; name the tensors with --layers")
    if len(keep) != len(names):
        del graph.output[:]
        graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in keep)
    model_layout = layout or detect_layout(in_layout, [shapes[n] for n in keep])
    layouts = layer_layouts(
        model,
        inp.name,
        size,
        in_channels,
        in_layout,
        {n: shapes[n] for n in keep},
        model_layout,
        declared=layout is not None,
    )
    producer = {o: node for node in graph.node for o in node.output}
    infos = []
    for i, n in enumerate(keep):
        c, h, w = layer_chw(shapes[n], layouts[n])
        infos.append(LayerInfo(i, n, c, h, w, producer[n].op_type if n in producer else "", n, layouts[n]))
    params = int(sum(int(np.prod(t.dims)) for t in graph.initializer))
    return ImportedOnnx(model.SerializeToString(), infos, size, in_channels, model_layout, params)


def load_onnx(path: Path | str):
    """Parse and check an ONNX file; UserError for a missing, corrupt or non-ONNX file."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise UserError(f"ONNX file {p} does not exist")
    try:
        model = onnx.load_model_from_string(p.read_bytes())
    except Exception as exc:
        raise UserError(
            f"{p} is not a readable ONNX file ({type(exc).__name__}); export the model with "
            f"torch.onnx.export or tf2onnx and try again"
        ) from None
    if not model.graph.node:
        raise UserError(f"{p} is not a usable ONNX model: its graph has no nodes")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise UserError(f"{p} is not a valid ONNX model: {str(exc).splitlines()[0]}") from None
    return model


def image_input(model, input_size: int | None):
    """(input ValueInfo, channels, layout, size) of the one 4-D float image input; UserError otherwise."""
    import onnx

    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UserError(
            f"the ONNX model must have exactly one input (the image batch); it has {len(inputs)}: "
            f"{', '.join(i.name for i in inputs)}"
        )
    inp = inputs[0]
    ttype = inp.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
    if not ttype.HasField("shape") or len(dims) != 4:
        raise UserError(
            f"the ONNX model has no 4-D image input: input {inp.name!r} has shape {dims or 'unknown'}; "
            f"Unitscope needs (batch, channels, height, width) or (batch, height, width, channels)"
        )
    if ttype.elem_type != onnx.TensorProto.FLOAT:
        raise UserError(f"input {inp.name!r} must be float32 (it is {onnx.TensorProto.DataType.Name(ttype.elem_type)})")
    if dims[1] in (1, 3):
        channels, layout, spatial = dims[1], "nchw", dims[2:4]
    elif dims[3] in (1, 3):
        channels, layout, spatial = dims[3], "nhwc", dims[1:3]
    else:
        raise UserError(f"the ONNX model has no 4-D image input with 1 or 3 channels: {inp.name!r} has shape {dims}")
    static = [d for d in spatial if d]
    if len(static) == 2 and static[0] != static[1]:
        raise UserError(f"the input must be square; {inp.name!r} is {spatial[0]} x {spatial[1]}")
    if len(static) < 2 and input_size is None:
        raise UserError(f"input {inp.name!r} has a dynamic spatial size {spatial}; pass --input-size N")
    if static and input_size is not None and input_size != static[0]:
        raise UserError(f"--input-size {input_size} differs from the model's fixed input size {static[0]}")
    size = input_size if input_size is not None else static[0]
    if size <= 0:
        raise UserError(f"--input-size must be positive, not {size}")
    return inp, channels, layout, size


def _set_input_shape(inp, size: int, channels: int, layout: str) -> None:
    dims = inp.type.tensor_type.shape.dim
    values = [None, channels, size, size] if layout == "nchw" else [None, size, size, channels]
    for d, v in zip(dims, values, strict=True):
        if v is None:
            d.dim_param = "batch"
        else:
            d.dim_value = v


def auto_layer_names(model) -> list[str]:
    """Tensor names the layer rule picks, in graph (topological = network) order."""
    graph = model.graph
    consts = {t.name for t in graph.initializer}
    consts |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producer = {o: node for node in graph.node for o in node.output}
    gelu_muls = {n.output[0] for n in graph.node if n.op_type == "Mul" and _is_gelu(n, producer)}
    # of a chain of GELU Muls (x * 0.5 * (1 + erf)), only the last one is the activation's output
    inner = {i for n in graph.node if n.op_type == "Mul" and n.output[0] in gelu_muls for i in n.input}
    names: list[str] = []
    for node in graph.node:
        out = node.output[0] if node.output else None
        if out is None:
            continue
        computed = [i for i in node.input if i and i not in consts]
        is_gelu = out in gelu_muls and out not in inner
        if node.op_type in ACTIVATION_OPS or (node.op_type == "Mul" and (_is_gated(node, producer) or is_gelu)):
            names.append(out)
        elif node.op_type in BLOCK_OPS and len(computed) >= 2 and len(set(computed)) == len(computed):
            if node.op_type == "Add" and any(_is_gelu_part(producer.get(i), producer) for i in computed):
                continue
            names.append(out)
    seen: set[str] = set()
    return [n for n in names if not (n in seen or seen.add(n))]


def tensor_types(model) -> dict[str, int]:
    """Tensor name -> ONNX elem type, from shape inference (tensors it cannot type are absent)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:
        log.warning("ONNX shape inference failed (%s); layer types unknown", exc)
        inferred = model
    g = inferred.graph
    return {
        v.name: v.type.tensor_type.elem_type
        for v in [*g.value_info, *g.output, *g.input]
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type
    }


def _is_gated(node, producer) -> bool:
    """x * Sigmoid(x) or x * HardSigmoid(x)."""
    if len(node.input) != 2:
        return False
    for a, b in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
        gate = producer.get(b)
        if gate is not None and gate.op_type in GATE_OPS and gate.input[0] == a:
            return True
    return False


def _is_gelu_part(node, producer, depth: int = 3) -> bool:
    """Whether `node` sits on an Erf/Tanh path (the inner part of a decomposed GELU)."""
    if node is None or depth == 0:
        return False
    if node.op_type in ("Erf", "Tanh"):
        return True
    return any(_is_gelu_part(producer.get(i), producer, depth - 1) for i in node.input)


def _is_gelu(node, producer) -> bool:
    """The final Mul of x * 0.5 * (1 + erf(x / sqrt 2)) (or the tanh form)."""
    return any(_is_gelu_part(producer.get(i), producer) for i in node.input)


def check_tensor_names(model, names: list[str]) -> None:
    """UserError naming unknown tensors, with close names and the layers `--layers auto` would pick."""
    if not names:
        raise UserError("--layers is empty: pass auto or a comma-separated list of tensor names")
    valid = [o for node in model.graph.node for o in node.output if o]
    valid_set = set(valid)
    unknown = [n for n in names if n not in valid_set]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"--layers names a tensor twice: {', '.join(dup)}")
    if unknown:
        lines = [f"the graph has no tensor named {', '.join(repr(u) for u in unknown)}."]
        for u in unknown:
            close = difflib.get_close_matches(u, valid, n=5, cutoff=0.5)
            if close:
                lines.append(f"  close to {u!r}: {', '.join(close)}")
        auto = auto_layer_names(model)
        shown = auto[:30]
        lines.append(
            f"Valid layer tensors (what --layers auto picks, {len(auto)}): {', '.join(shown)}"
            + (f", ... and {len(auto) - len(shown)} more" if len(auto) > len(shown) else "")
        )
        lines.append(f"Any of the graph's {len(valid)} node outputs may be named.")
        raise UserError("\n".join(lines))


def _probe_shapes(model, input_name: str, size: int, channels: int, layout: str) -> dict[str, tuple[int, ...]]:
    """Run the graph once on a one-image batch to learn every exposed tensor's shape."""
    try:
        return _run_shapes(model, input_name, size, channels, layout)
    except Exception as exc:
        raise UserError(
            f"onnxruntime cannot run this model at input size {size} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]})"
        ) from None


def _run_shapes(model, input_name: str, size: int, channels: int, layout: str) -> dict[str, tuple[int, ...]]:
    import onnxruntime as ort

    shape = (1, channels, size, size) if layout == "nchw" else (1, size, size, channels)
    x = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    outs = session.run(None, {input_name: x})
    return {o.name: tuple(a.shape) for o, a in zip(session.get_outputs(), outs, strict=True)}


def detect_layout(input_layout: str, shapes: list[tuple[int, ...]]) -> str:
    """The model's layout, for layers whose own cannot be told: nhwc when the input is channels-last, or when
    most 4-D layers look (1, H, H, C) rather than (1, C, H, H)."""
    if input_layout == "nhwc":
        return "nhwc"
    four = [s for s in shapes if len(s) == 4]
    last = sum(1 for s in four if shape_layout(s) == "nhwc")
    first = sum(1 for s in four if shape_layout(s) == "nchw")
    return "nhwc" if last > first else "nchw"


def shape_layout(shape: tuple[int, ...]) -> str | None:
    """The layout a 4-D output shape (1, a, b, c) shows: nchw when b == c != a (square maps, channels first),
    nhwc when a == b != c, None when both or neither fit (a == b == c, non-square maps) or it is not 4-D."""
    if len(shape) != 4:
        return None
    first = shape[2] == shape[3] and shape[1] != shape[2]
    last = shape[1] == shape[2] and shape[2] != shape[3]
    return "nchw" if first and not last else "nhwc" if last and not first else None


def layer_layouts(
    model,
    input_name: str,
    size: int,
    channels: int,
    in_layout: str,
    shapes: dict[str, tuple[int, ...]],
    model_layout: str,
    *,
    declared: bool = False,
) -> dict[str, str]:
    """Each layer's layout (see the module docstring): `model_layout` for all when it was declared, else
    from its shape, else from a second run at another input size, else `model_layout`."""
    if declared:
        return dict.fromkeys(shapes, model_layout)
    out = {n: shape_layout(s) or model_layout for n, s in shapes.items()}
    unclear = [n for n, s in shapes.items() if len(s) == 4 and shape_layout(s) is None]
    if unclear:
        other = _probe_other_size(model, input_name, size, channels, in_layout, unclear)
        for n in unclear:
            told = _layout_from_sizes(shapes[n], other.get(n))
            if told is None:
                log.warning(
                    "layer %s %s: cannot tell channels-first from channels-last; taking the model's "
                    "layout (%s); declare --layout if that is wrong",
                    n,
                    shapes[n],
                    model_layout,
                )
            out[n] = told or model_layout
    return out


def _layout_from_sizes(shape: tuple[int, ...], other: tuple[int, ...] | None) -> str | None:
    """nchw when only dims 2, 3 changed with the input size, nhwc when only dims 1, 2 did; else None."""
    if other is None or len(other) != 4 or other[0] != shape[0]:
        return None
    changed = tuple(a != b for a, b in zip(shape, other, strict=True))
    if changed == (False, False, True, True):
        return "nchw"
    if changed == (False, True, True, False):
        return "nhwc"
    return None


def _probe_other_size(
    model, input_name: str, size: int, channels: int, in_layout: str, names: list[str]
) -> dict[str, tuple[int, ...]]:
    """Shapes of `names` with the input at another size (the graph cut to them, so that a head of fixed size
    does not stop it); {} when the graph does not run at another size."""
    import onnx
    import onnx.utils

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]  # intermediate shapes recorded at the first size
    for inp in probe.graph.input:
        if inp.name == input_name:
            dims = inp.type.tensor_type.shape.dim
            for i in (1, 2) if in_layout == "nhwc" else (2, 3):
                dims[i].Clear()
                dims[i].dim_param = f"side{i}"
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    try:
        probe = onnx.utils.Extractor(probe).extract_model([input_name], list(names))
    except Exception as exc:  # an exotic graph the extractor cannot cut: run it whole
        log.debug("cannot cut the graph for the second-size probe (%s)", exc)
    for other in (2 * size, size + 32):
        try:
            return _run_shapes(probe, input_name, other, channels, in_layout)
        except Exception as exc:
            log.debug("the graph does not run at input size %d (%s)", other, exc)
    return {}


def layer_chw(shape: tuple[int, ...], layout: str) -> tuple[int, int, int]:
    """(C, H, W) of a layer output shape with its batch dimension, by the Units contract."""
    if len(shape) == 4:
        return (shape[3], shape[1], shape[2]) if layout == "nhwc" else (shape[1], shape[2], shape[3])
    if len(shape) == 3:
        return shape[2], shape[1], 1
    return shape[1], 1, 1
