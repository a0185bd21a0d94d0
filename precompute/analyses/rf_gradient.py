"""The gradient method of the `receptive_fields` analysis (precompute/analyses/receptive_fields.py).

For models that come from torch (zoo names and untrained-M, rebuilt from precompute.models with their
recorded seed): the absolute gradient of the unit with respect to the input image, summed over colour
channels and averaged over random stimuli of the dataset (the paper's "instantaneous receptive field"),
area-averaged onto the estimator's 64 x 64 grid over the central 8 degrees and given to the shared
estimator with a GRADIENT_SMOOTH_DEG smoothing. The rebuilt network is checked against the stored model
(`_layer_gradients`), and forward passes stop at the unit's layer (`layer_forward_fn`). A `pixels`
unit's gradient field is the pixel itself (`pixel_rf`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence

import numpy as np

from precompute.analyses import common
from precompute.analyses.context import AnalysisContext
from precompute.core.errors import UserError
from precompute.datasets.rf_mapping import EXTENT_DEG, MAP_SIZE, RFEstimate, estimate_rf
from precompute.models import zoo
from precompute.models.base import LayerInfo
from precompute.models.export import _shape_to_chw, tap_points
from precompute.models.preprocess import to_model_input

log = logging.getLogger(__name__)

GRADIENT_BATCH = 16
GRADIENT_SMOOTH_DEG = 0.25
Unit = tuple[int, int, int, int]


def gradient_maps(
    layer_forward: Callable, batches: Sequence, units: Sequence[tuple[int, int, int]], device: str = "cpu"
) -> np.ndarray:
    """Mean over images of |d unit / d input| summed over input channels: (units, S, S).

    layer_forward(x) -> the layer's output (batch, C, H, W) for a model-input batch x (torch, float32);
    `batches` are model-input arrays (n, in_channels, S, S); `units` are (channel, y, x) of that layer.
    Images are independent in eval mode, so the gradient of the batch sum is every image's own gradient."""
    import torch

    total = None
    count = 0
    for xb in batches:
        x = torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32)).to(device).requires_grad_(True)
        out = layer_forward(x)
        if total is None:
            total = np.zeros((len(units), x.shape[2], x.shape[3]))
        for i, (c, y, xx) in enumerate(units):
            (g,) = torch.autograd.grad(out[:, c, y, xx].sum(), x, retain_graph=i < len(units) - 1)
            total[i] += g.abs().sum(dim=1).sum(dim=0).double().cpu().numpy()
        count += x.shape[0]
    if total is None:
        raise ValueError("no images given")
    return total / count


def resample_to_grid(
    image_map: np.ndarray, image_deg: float, extent_deg: float = EXTENT_DEG, grid: int = MAP_SIZE
) -> np.ndarray:
    """A map over the whole image (S x S pixels spanning image_deg, row 0 = top) -> (grid, grid) over the
    central extent: the mean of the pixels whose centre lies in each cell (bilinear samples at the cell
    centres when the image has fewer pixels than the grid)."""
    m = np.asarray(image_map, dtype=np.float64)
    s = m.shape[0]
    px_deg = (np.arange(s) + 0.5) / s * image_deg - image_deg / 2
    if s >= grid * extent_deg / image_deg:
        cell = np.floor((px_deg + extent_deg / 2) / extent_deg * grid).astype(int)
        ok = (cell >= 0) & (cell < grid)
        rows, cols = np.meshgrid(cell, cell, indexing="ij")
        keep = ok[:, None] & ok[None, :]
        flat = (rows * grid + cols)[keep]
        sums = np.bincount(flat, weights=m[keep], minlength=grid * grid)
        counts = np.bincount(flat, minlength=grid * grid)
        return (sums / np.maximum(counts, 1)).reshape(grid, grid)
    from scipy import ndimage

    centres = (np.arange(grid) + 0.5) / grid * extent_deg - extent_deg / 2
    coords = (centres + image_deg / 2) / image_deg * s - 0.5
    rr, cc = np.meshgrid(coords, coords, indexing="ij")
    return ndimage.map_coordinates(m, [rr, cc], order=1, mode="constant", cval=0.0)


def gradient_rf(grad_map: np.ndarray, image_deg: float, smooth_deg: float = GRADIENT_SMOOTH_DEG) -> RFEstimate:
    """The shared estimator on a gradient map (pixels over the whole image), on a 64 x 64 grid of the central
    8 degrees."""
    return estimate_rf(resample_to_grid(grad_map, image_deg), smooth_deg=smooth_deg)


def pixel_rf(y: int, x: int, size_px: int, image_deg: float) -> RFEstimate:
    """The trivial field of a `pixels` unit: the pixel itself (map: the pixel on the 64 x 64 grid)."""
    step = image_deg / size_px
    cx = (x + 0.5) * step - image_deg / 2
    cy = -((y + 0.5) * step - image_deg / 2)
    delta = np.zeros((size_px, size_px))
    delta[y, x] = 1.0
    grid = resample_to_grid(delta, image_deg)
    total = grid.sum()
    cell_area = (EXTENT_DEG / MAP_SIZE) ** 2
    density = grid / (total * cell_area) if total > 0 else np.full_like(grid, np.nan)
    return RFEstimate(cx, cy, 2.0 * step / math.sqrt(math.pi), density.astype(np.float32))


# ---------------------------------------------------------------------------------------------- torch models
class _StopForwardError(Exception):
    """Raised by the hook once the wanted layer's output is captured (the rest of the forward is skipped)."""


def layer_forward_fn(net, layer_name: str) -> Callable:
    """forward(x) -> the output of the exposed layer `layer_name` (named by precompute.models.export's rule),
    stopping the network there."""
    import torch

    for mod in net.modules():
        if hasattr(mod, "inplace") and isinstance(mod.inplace, bool):
            mod.inplace = False  # as the exporter does: an in-place op must not overwrite the captured output
    state: dict = {}

    def make_hook(path: str):
        def hook(_module, _inputs, output):
            if not isinstance(output, torch.Tensor) or _shape_to_chw(tuple(output.shape)) is None:
                return
            n = state["calls"].get(path, 0)
            state["calls"][path] = n + 1
            if any(output is seen for seen in state["seen"]):
                return
            state["seen"].append(output)
            if (path if n == 0 else f"{path}:{n}") == layer_name:
                state["out"] = output
                raise _StopForwardError

        return hook

    handles = [module.register_forward_hook(make_hook(path)) for path, module, _ in tap_points(net)]

    def forward(x):
        state.update(calls={}, seen=[], out=None)
        with contextlib.suppress(_StopForwardError):
            net(x)
        if state["out"] is None:
            raise KeyError(f"layer {layer_name!r} was not produced by the network")
        out = state["out"]
        state.update(seen=[], out=None)
        return out

    forward.handles = handles  # type: ignore[attr-defined]
    forward.net = net  # type: ignore[attr-defined]
    return forward


def torch_module_for(ctx: AnalysisContext):
    """The torch network the context's model was exported from (eval mode), or None when it cannot be rebuilt
    here (an ONNX file, weights from a local file, a pretrained download that is not cached, a control)."""
    model = ctx.model
    row = ctx.model_row()
    try:
        if row["kind"] == "untrained" and row.get("reference_model"):
            entry = zoo.get_entry(row["reference_model"])
            return zoo.build(entry, pretrained=False, seed=ctx.model_seed())
        if row["kind"] == "pretrained":
            entry = _zoo_entry_of(row)
            return zoo.build(entry, pretrained=True) if entry is not None else None
    except (UserError, OSError, RuntimeError) as exc:
        log.warning("%s: cannot rebuild the torch network (%s); gradient receptive fields skipped", model, exc)
    return None


def _zoo_entry_of(row: dict):
    """The zoo entry a pretrained model was built from, from its `source` ("library:constructor[ weights=W]");
    None for weights from a local file (not reproducible here) or an unknown constructor."""
    library, _, rest = (row.get("source") or "").partition(":")
    constructor, _, weights = rest.partition(" weights=")
    for entry in ([zoo.ZOO[row["model"]]] if row["model"] in zoo.ZOO else []) + list(zoo.ZOO.values()):
        if entry.library == library and entry.constructor == constructor.strip():
            if weights and weights.strip() != (entry.weights or ""):
                return None  # a local weights file
            return entry
    return None


def gradient_rfs(ctx: AnalysisContext, units: list[Unit], image_deg: float, n_images: int) -> dict[Unit, RFEstimate]:
    """The gradient receptive field of every unit of the context's model (over `n_images` random stimuli drawn
    with the context's seed); {} when the model cannot be rebuilt as a torch network here."""
    import torch

    model = ctx.model
    net = torch_module_for(ctx)
    if net is None:
        log.info("%s does not come from a torch network this build can rebuild: mapping receptive fields only", model)
        return {}
    for param in net.parameters():
        param.requires_grad_(False)  # only input gradients are needed: the backward skips every weight gradient
    if torch.cuda.is_available():
        net = net.to("cuda")
    row = ctx.model_row()
    layers = [
        LayerInfo(int(r.layer_idx), r.layer, int(r.channels), int(r.height), int(r.width))
        for r in ctx.layers().itertuples(index=False)
    ]
    feed = ctx.image_feed()
    n_stimuli = len(feed.stimulus_ids)
    rng = np.random.default_rng(common.derived_seed(ctx.seed, "rf-gradient", ctx.dataset))
    chosen = np.sort(rng.choice(n_stimuli, size=min(n_images, n_stimuli), replace=False))

    def prep(idx):
        return to_model_input(feed.load(idx), int(row["input_size"]), int(row["in_channels"]), row["mean"], row["std"])

    batches = [prep(chosen[b : b + GRADIENT_BATCH]) for b in range(0, len(chosen), GRADIENT_BATCH)]
    first = prep(np.array([0]))
    stored = _stored_first_values(ctx, units)
    out: dict[Unit, RFEstimate] = {}
    for li in sorted({u[0] for u in units}):
        forward = layer_forward_fn(net, layers[li].layer)
        try:
            got = _layer_gradients(forward, layers[li], [u for u in units if u[0] == li], first, batches, stored, model)
        finally:
            for h in forward.handles:
                h.remove()
        out.update({u: gradient_rf(m, image_deg) for u, m in got.items()})
    return out


def _layer_gradients(
    forward, layer, in_layer: list[Unit], first: np.ndarray, batches: list, stored: dict, model: str
) -> dict[Unit, np.ndarray]:
    """Gradient maps of one layer's units, after checking the rebuilt layer against the stored model."""
    import torch

    li = layer.layer_idx
    device = next(iter(forward.net.parameters()), torch.zeros(0)).device.type
    try:
        with torch.no_grad():
            probe = forward(torch.from_numpy(first).to(device)).cpu()
    except KeyError as exc:
        log.warning("%s layer %d: %s; gradient skipped for it", model, li, exc)
        return {}
    if tuple(probe.shape[1:]) != (layer.channels, layer.height, layer.width):
        log.warning(
            "%s layer %d: rebuilt network gives shape %s, stored %s; gradient skipped",
            model,
            li,
            tuple(probe.shape[1:]),
            (layer.channels, layer.height, layer.width),
        )
        return {}
    bad = [
        u
        for u in in_layer
        if u in stored and abs(float(probe[0, u[1], u[2], u[3]]) - stored[u]) > 1e-3 * max(1.0, abs(stored[u]))
    ]
    if bad:
        u = bad[0]
        log.warning(
            "%s layer %d: the rebuilt network does not reproduce the stored activations (unit %s: "
            "%.5g vs %.5g); gradient skipped",
            model,
            li,
            u,
            float(probe[0, u[1], u[2], u[3]]),
            stored[u],
        )
        return {}
    maps = gradient_maps(forward, batches, [u[1:] for u in in_layer], device=device)
    return dict(zip(in_layer, maps, strict=True))


def _stored_first_values(ctx: AnalysisContext, units: list[Unit]) -> dict[Unit, float]:
    """Gathered activations of these units on the first stimulus (idx 0), for the rebuilt-network check."""
    return {u: float(values[0]) for u, values in ctx.activations(units).items()}
