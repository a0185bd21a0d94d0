"""`open_source(con, model, where)`: the ActivationSource (precompute/models/base.py) of any stored model.

ONNX models run in onnxruntime with explicit providers (CUDA when this onnxruntime has it, else CPU)
and intra-op threads = the cores this process may use. onnxruntime runs the whole graph whatever outputs
are asked for, so a call that wants only some layers runs a copy of the graph cut after the deepest of
them (built once per set of layers and kept while that set is in use: the engine's passes and the
analyses ask for the same layers batch after batch); a pass over the early layers of a network then
costs a fraction of a full inference. Every source returns float32 NCHW arrays
(batch, C, H, W): channels-last 4-D outputs are transposed, (batch, C) becomes (batch, C, 1, 1), and
(batch, tokens, dims) becomes (batch, dims, tokens, 1) (tokens are rows: y = token, x = 0). Whether a
4-D output is channels-last is the layer's own layout (layers.layout, decided per layer when the model
was added: one graph may hold both), or the model's (models.layout) where the layer has none.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import duckdb
import numpy as np

from precompute.models import registry
from precompute.models.base import ActivationSource, LayerInfo
from precompute.models.controls import PixelsSource, RandomSource
from precompute.models.preprocess import to_model_input

log = logging.getLogger(__name__)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def providers() -> list[str]:
    """onnxruntime providers in preference order: CUDA when available, always CPU last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    chosen = [p for p in ("CUDAExecutionProvider",) if p in available]
    return [*chosen, "CPUExecutionProvider"]


def data_dir_of(where) -> Path:
    """The data folder from a Store (its served file's folder), a Settings (data_dir) or a path."""
    if hasattr(where, "served_path"):
        return registry.data_folder(where)
    if hasattr(where, "data_dir"):
        return Path(where.data_dir)
    return Path(where)


def open_source(con: duckdb.DuckDBPyConnection, model: str, where, *, threads: int | None = None) -> ActivationSource:
    """Open `model` (any kind) as an ActivationSource.

    `where` locates the data folder holding the ONNX files: the Store (preferred: its served file's
    folder), a backend.config.Settings (its data_dir) or the folder itself.
    """
    row = registry.read_model(con, model)
    layers = registry.read_layers(con, model)
    threads = threads or available_cores()
    if row["kind"] == "control" and row["family"] == "pixels":
        return PixelsSource(model, int(row["input_size"]))
    if row["kind"] == "control" and row["family"] == "random":
        return RandomSource(model, layers, seed=control_seed(con, model), threads=threads)
    if not row.get("onnx_path"):
        raise RuntimeError(f"model {model!r} has no ONNX file recorded")
    path = data_dir_of(where) / row["onnx_path"]
    return OnnxSource(
        model,
        path,
        layers,
        input_size=int(row["input_size"]),
        in_channels=int(row["in_channels"]),
        mean=row["mean"],
        std=row["std"],
        layout=row.get("layout") or "nchw",
        threads=threads,
    )


def control_seed(con: duckdb.DuckDBPyConnection, model: str) -> int:
    """The seed recorded for a control model in build_info['seeds'] (0 when none was recorded)."""
    row = con.execute("SELECT value FROM build_info WHERE key = 'seeds'").fetchone()
    seeds = json.loads(row[0]) if row and row[0] else {}
    return int(seeds.get(f"model:{model}", 0))


class OnnxSource:
    """An ONNX file whose layer outputs are graph outputs, run by onnxruntime."""

    def __init__(
        self,
        model: str,
        path: Path,
        layers: list[LayerInfo],
        *,
        input_size: int,
        in_channels: int,
        mean,
        std,
        layout: str = "nchw",
        threads: int | None = None,
    ):
        import onnxruntime as ort

        if not Path(path).is_file():
            raise FileNotFoundError(f"the ONNX file of model {model!r} is missing: {path}")
        self.model = model
        self.layers = list(layers)
        self.input_size = input_size
        self.in_channels = in_channels
        self.mean = list(mean)
        self.std = list(std)
        self.layout = layout  # the model's: for layers without their own (LayerInfo.layout "")
        self.layouts = [la.layout or layout for la in self.layers]
        self.path = Path(path)
        self.options = ort.SessionOptions()
        self.options.intra_op_num_threads = threads or available_cores()
        self.options.inter_op_num_threads = 1
        self.options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Between runs onnxruntime's threads would spin waiting for work, taking the cores from the numpy and
        # BLAS work the engine does between batches (measured: the staging took 1.6x as long).
        self.options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), self.options, providers=providers())
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_layout = input_layout(inp.shape)
        self._cut: tuple[frozenset[str], object] | None = None  # (output names, session) of the cut graph
        self._cut_failed = False

    def activations(self, images, stimulus_ids, layer_indices=None) -> list[np.ndarray]:
        idx = list(range(len(self.layers))) if layer_indices is None else list(layer_indices)
        bad = [i for i in idx if not 0 <= int(i) < len(self.layers)]
        if bad:
            raise IndexError(f"layer indices {bad} out of range (the model has {len(self.layers)} layers)")
        x = to_model_input(images, self.input_size, self.in_channels, self.mean, self.std, self.input_layout)
        names = [self.layers[i].output_name for i in idx]
        outs = self.session_for(names).run(names, {self.input_name: x})
        return [to_nchw(o, self.layouts[i]) for i, o in zip(idx, outs, strict=True)]

    def activations_into(self, images, stimulus_ids, layer_indices=None, out=None) -> list[np.ndarray]:
        """`activations`, with layer i written by onnxruntime straight into out[i] where one is given (a
        float32 C-ordered array of batch x units, e.g. the engine's stage rows; I/O binding: no copy, no
        allocation). Outputs that need a transpose to become NCHW (channels-last, tokens) are returned as
        new arrays as `activations` returns them."""
        idx = list(range(len(self.layers))) if layer_indices is None else list(layer_indices)
        bad = [i for i in idx if not 0 <= int(i) < len(self.layers)]
        if bad:
            raise IndexError(f"layer indices {bad} out of range (the model has {len(self.layers)} layers)")
        dests = list(out) if out is not None else [None] * len(idx)
        if len(dests) != len(idx):
            raise ValueError(f"{len(dests)} output arrays for {len(idx)} layers")
        x = to_model_input(images, self.input_size, self.in_channels, self.mean, self.std, self.input_layout)
        n = x.shape[0]
        names = [self.layers[i].output_name for i in idx]
        session = self.session_for(names)
        ranks = {o.name: len(o.shape) for o in session.get_outputs()}
        binding = session.io_binding()
        binding.bind_cpu_input(self.input_name, x)
        bound = []
        for i, name, dest in zip(idx, names, dests, strict=True):
            layer = self.layers[i]
            shape = native_shape(layer, n, ranks.get(name, 0), self.layouts[i])
            if dest is None or shape is None:
                binding.bind_output(name, "cpu")
                bound.append(None)
                continue
            if dest.dtype != np.float32 or not dest.flags.c_contiguous or dest.size != int(np.prod(shape)):
                raise ValueError(
                    f"{self.model}: the output array for layer {layer.layer!r} must be C-ordered float32 "
                    f"with {int(np.prod(shape))} values; got {dest.dtype}, shape {dest.shape}"
                )
            binding.bind_output(name, "cpu", 0, np.float32, list(shape), dest.ctypes.data)
            bound.append(dest)
        try:
            session.run_with_iobinding(binding)
        except Exception as exc:
            raise RuntimeError(
                f"{self.model}: onnxruntime failed writing the layer outputs in place (an output's "
                f"shape differs from the layers table?): {exc}"
            ) from exc
        values = binding.get_outputs()
        return [
            to_nchw(values[j].numpy(), self.layouts[i]) if dest is None else dest.reshape(shape_of(self.layers[i], n))
            for j, (i, dest) in enumerate(zip(idx, bound, strict=True))
        ]

    def session_for(self, names: list[str]):
        """The full session, or a session of the graph cut to `names` when they are not every layer."""
        wanted = frozenset(names)
        if self._cut_failed or wanted >= {layer.output_name for layer in self.layers}:
            return self.session
        if self._cut is not None and self._cut[0] == wanted:
            return self._cut[1]
        import onnxruntime as ort

        self._cut = None  # release the previous cut (and its memory arena) before building the next
        try:
            model = cut_graph(self.path, self.input_name, sorted(wanted))
            session = ort.InferenceSession(model.SerializeToString(), self.options, providers=providers())
        except Exception as exc:  # an exotic graph the extractor cannot cut: run the whole graph
            log.warning("%s: cannot cut the ONNX graph (%s); running the whole graph for every call", self.model, exc)
            self._cut_failed = True
            return self.session
        self._cut = (wanted, session)
        return session

    def close(self) -> None:
        self.session = None
        self._cut = None


def cut_graph(path: Path, input_name: str, output_names: list[str]):
    """The ONNX model at `path` reduced to the nodes that `output_names` need (onnx.utils.Extractor)."""
    import onnx
    import onnx.utils

    model = onnx.load(str(path))
    return onnx.utils.Extractor(model).extract_model([input_name], list(output_names))


def shape_of(layer: LayerInfo, n: int) -> tuple[int, int, int, int]:
    """A batch of the layer's output in the Units contract: (n, C, H, W)."""
    return (n, layer.channels, layer.height, layer.width)


def native_shape(layer: LayerInfo, n: int, rank: int, layout: str) -> tuple[int, ...] | None:
    """The shape onnxruntime gives a batch of this output when it is already NCHW-ordered ((n, C, H, W),
    or (n, C) for a vector), else None (a transpose is needed first)."""
    if rank == 4 and layout == "nchw":
        return shape_of(layer, n)
    if rank == 2 and layer.height == 1 and layer.width == 1:
        return (n, layer.channels)
    return None


def input_layout(shape) -> str:
    """ "nhwc" when a 4-D image input has its channels last ((N, H, W, 1|3) with H not 1|3), else "nchw"."""
    if len(shape) == 4 and shape[3] in (1, 3) and shape[1] not in (1, 3):
        return "nhwc"
    return "nchw"


def to_nchw(a: np.ndarray, layout: str = "nchw") -> np.ndarray:
    """A layer output -> float32 (batch, C, H, W) by the Units contract."""
    a = np.asarray(a)
    if a.ndim == 4:
        if layout == "nhwc":
            a = a.transpose(0, 3, 1, 2)
    elif a.ndim == 3:  # (batch, tokens, dims) -> (batch, dims, tokens, 1)
        a = a.transpose(0, 2, 1)[..., None]
    elif a.ndim == 2:
        a = a[:, :, None, None]
    else:
        raise ValueError(f"a layer output must have 2, 3 or 4 dimensions, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32)
