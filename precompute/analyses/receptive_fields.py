"""Receptive fields of model units (Figure S2), by two methods, estimated like the sites' fields.

mapping   for ANY model (ONNX-only included), through its ActivationSource, exactly the physiological
          protocol of precompute/datasets/rf_mapping.py: 1-degree white squares on a mean-gray background at
          the 64 positions of an 8 x 8 grid over the central 8 degrees, plus the blank gray image, drawn at
          the dataset's image size and span and given to the model like any stimulus (8-bit, resized by the
          Input contract); response = activation to the square minus activation to the blank; the shared
          estimator (`estimate_rf`: 1-degree Gaussian smoothing, normalisation, 1-SD contour) gives the
          centre (+x right, +y up) and the diameter in degrees. 65 images: one inference pass.
gradient  for models that come from torch (zoo names and untrained-M, rebuilt from precompute.models
          with their recorded seed): the absolute gradient of the unit with respect to the input image,
          summed over colour channels and averaged over N_GRADIENT_IMAGES (64) random stimuli of the
          dataset (the paper's "instantaneous receptive field"). The map (model-input pixels spanning
          the image's degrees) is area-averaged onto the estimator's 64 x 64 grid over the central 8
          degrees and given to the same estimator with a GRADIENT_SMOOTH_DEG smoothing (pixel-level
          gradients are checkerboard-noisy; 1 degree would hide the small fields the method reveals).
          The rebuilt network is checked against the stored model: the unit's activation on the first
          stimulus must equal the gathered value (else the gradient is skipped, with a warning).
          Forward passes stop at the unit's layer, so early-layer units are cheap.

Controls: a `pixels` unit's field is trivial: its gradient field is the pixel itself (stored as the
gradient row, centre at the pixel, diameter of the pixel's equal-area circle), and its mapping row
follows the protocol like any model. `random-M` units have no receptive field (their activations do not
depend on the image): nothing is computed or stored for them, and the log says so.

Rows: `receptive_fields`, one per (unit, method), for each site's best unit (site_id = the first site in
site order whose best unit it is; distance_deg to that site's mapped centre where the dataset has one)
and for units asked for with `python -m precompute rf` (site_id NULL). `map` is stored in the estimator's
orientation, the one `site_rf_maps` holds (row 0 = the top of the visual field).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from precompute.analyses import common
from precompute.analyses.common import dataset_image_geometry
from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.core.errors import UserError
from precompute.core.feeds import PngFeed
from precompute.datasets.rf_mapping import EXTENT_DEG, GRID, MAP_SIZE, RFEstimate, estimate_rf, square_grid_stimuli
from precompute.match.inputs import load_inputs
from precompute.models import registry, zoo
from precompute.models.export import _shape_to_chw, tap_points
from precompute.models.preprocess import to_model_input

log = logging.getLogger(__name__)

N_GRADIENT_IMAGES = 64
#: the default protocol's images for the gradient method (--protocol paper: N_GRADIENT_IMAGES). The cost is
#: one backward pass per (unit, image): 0.6-2 s per Lite0 unit for 16 images on 2 (shared) CPU cores.
N_GRADIENT_IMAGES_DEFAULT = 16
#: regions whose sites' best units get a gradient field in the default protocol (Figure S2 shows V4; the
#: mapped fields of IT are too large for a comparison): ~1/3 of the units. --protocol paper: every site.
#: A dataset without these regions gets gradients for every site.
DEFAULT_GRADIENT_REGIONS = ("V4",)
GRADIENT_BATCH = 16
GRADIENT_SMOOTH_DEG = 0.25
Unit = tuple[int, int, int, int]


# ---------------------------------------------------------------------------------------------- mapping
def mapping_images(image_px: int, image_deg: float) -> list[np.ndarray]:
    """The 64 squares (grid row-major, row 0 = top) and the blank, as 8-bit grayscale images."""
    squares, blank = square_grid_stimuli(image_px, image_deg=image_deg)
    return [np.round(img * 255).astype(np.uint8) for img in (*squares, blank)]


def mapping_responses(
    source, units: Sequence[Unit], image_px: int, image_deg: float, batch_size: int = 16
) -> np.ndarray:
    """(units, 8, 8): each unit's activation to each square minus its activation to the blank image."""
    images = mapping_images(image_px, image_deg)
    ids = [f"rf-square-{k:02d}" for k in range(GRID * GRID)] + ["rf-blank"]
    layers = sorted({u[0] for u in units})
    values = np.empty((len(units), len(images)), dtype=np.float64)
    for b0 in range(0, len(images), batch_size):
        b1 = min(len(images), b0 + batch_size)
        outs = dict(zip(layers, source.activations(images[b0:b1], ids[b0:b1], layer_indices=layers), strict=True))
        for i, (li, c, y, x) in enumerate(units):
            values[i, b0:b1] = np.asarray(outs[li])[:, c, y, x]
    return (values[:, :-1] - values[:, -1:]).reshape(len(units), GRID, GRID)


def mapping_rfs(source, units: Sequence[Unit], image_px: int, image_deg: float) -> list[RFEstimate]:
    """The in-silico mapping receptive field of every unit (the sites' estimator)."""
    return [estimate_rf(g) for g in mapping_responses(source, units, image_px, image_deg)]


# ---------------------------------------------------------------------------------------------- gradient
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


def torch_module_for(con, model: str):
    """The torch network `model` was exported from (eval mode), or None when it cannot be rebuilt here
    (an ONNX file, weights from a local file, a pretrained download that is not cached, a control)."""

    row = common.model_row(con, model)
    try:
        if row["kind"] == "untrained" and row.get("reference_model"):
            entry = zoo.get_entry(row["reference_model"])
            return zoo.build(entry, pretrained=False, seed=_model_seed(con, model))
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


def _model_seed(con, model: str) -> int:
    """The seed an untrained model was initialised with (build_info seeds, key model:<name>)."""
    row = con.execute("SELECT value FROM build_info WHERE key = 'seeds'").fetchone()
    seeds = json.loads(row[0]) if row and row[0] else {}
    return int(seeds.get(f"model:{model}", 0))


# ---------------------------------------------------------------------------------------------- analysis
def compute_unit_rfs(
    con,
    dataset: str,
    model: str,
    units: Sequence[Unit],
    where,
    *,
    seed: int = 0,
    methods: Sequence[str] = ("mapping", "gradient"),
    n_gradient_images: int = N_GRADIENT_IMAGES,
) -> dict[str, dict[Unit, RFEstimate]]:
    """method -> unit -> RFEstimate for the given units of a stored model (what the analysis and `rf` share)."""
    out: dict[str, dict[Unit, RFEstimate]] = {m: {} for m in methods}
    units = list(dict.fromkeys(tuple(int(v) for v in u) for u in units))
    if not units:
        return out
    if common.is_random_control(con, model):
        log.info(
            "%s is a random control: its units have no receptive field (activations do not depend on the "
            "image); nothing computed",
            model,
        )
        return out
    image_px, image_deg = dataset_image_geometry(con, dataset)
    if "mapping" in methods:
        t0 = time.perf_counter()
        opened = common.try_open_model(con, dataset, model, where, "mapping receptive fields")
        if opened is not None:
            source = opened[0]
            try:
                out["mapping"] = dict(zip(units, mapping_rfs(source, units, image_px, image_deg), strict=True))
            finally:
                source.close()
        log.info("%s: mapping receptive fields of %d units in %.1f s", model, len(units), time.perf_counter() - t0)
    if "gradient" in methods:
        t0 = time.perf_counter()
        if common.is_pixels_control(con, model):
            size = int(common.model_row(con, model)["input_size"])
            out["gradient"] = {u: pixel_rf(u[2], u[3], size, image_deg) for u in units}
        else:
            out["gradient"] = _gradient_for_model(con, dataset, model, units, image_deg, seed, n_gradient_images)
        log.info(
            "%s: gradient receptive fields of %d units in %.1f s", model, len(out["gradient"]), time.perf_counter() - t0
        )
    return out


def _gradient_for_model(
    con, dataset: str, model: str, units: list[Unit], image_deg: float, seed: int, n_images: int
) -> dict[Unit, RFEstimate]:
    import torch

    net = torch_module_for(con, model)
    if net is None:
        log.info("%s does not come from a torch network this build can rebuild: mapping receptive fields only", model)
        return {}
    for param in net.parameters():
        param.requires_grad_(False)  # only input gradients are needed: the backward skips every weight gradient
    if torch.cuda.is_available():
        net = net.to("cuda")
    row = common.model_row(con, model)
    layers = registry.read_layers(con, model)
    inputs = load_inputs(con, dataset)
    feed = PngFeed(inputs.stimulus_ids, inputs.pngs)
    rng = np.random.default_rng(common.derived_seed(seed, "rf-gradient", dataset))
    chosen = np.sort(rng.choice(len(inputs.stimulus_ids), size=min(n_images, len(inputs.stimulus_ids)), replace=False))

    def prep(idx):
        return to_model_input(feed.load(idx), int(row["input_size"]), int(row["in_channels"]), row["mean"], row["std"])

    batches = [prep(chosen[b : b + GRADIENT_BATCH]) for b in range(0, len(chosen), GRADIENT_BATCH)]
    first = prep(np.array([0]))
    stored = _stored_first_values(con, dataset, model, units)
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


def _stored_first_values(con, dataset: str, model: str, units: list[Unit]) -> dict[Unit, float]:
    """Gathered activations of these units on the first stimulus (idx 0), for the rebuilt-network check."""
    df = con.execute(
        'SELECT layer_idx, channel, y, x, "values"[1] AS v FROM unit_activations WHERE dataset = ? AND model = ?',
        [dataset, model],
    ).df()
    wanted = set(units)
    return {u: float(v) for u, v in zip(common.units_of(df), df["v"], strict=True) if u in wanted}


def rf_rows(
    estimates: dict[str, dict[Unit, RFEstimate]],
    site_of: dict[Unit, str | None],
    site_rf: dict[str, tuple[float, float]],
) -> pd.DataFrame:
    """`receptive_fields` rows (without dataset, model) from estimates, the unit -> site map and the sites' centres."""
    rows = []
    for method, by_unit in estimates.items():
        for u, e in by_unit.items():
            site = site_of.get(u)
            sx, sy = site_rf.get(site, (math.nan, math.nan)) if site is not None else (math.nan, math.nan)
            dist = math.hypot(e.x_deg - sx, e.y_deg - sy)
            rows.append(
                (
                    *u,
                    method,
                    site,
                    _num(e.x_deg),
                    _num(e.y_deg),
                    _num(e.size_deg),
                    None if not np.isfinite(e.map).any() else e.map.ravel().astype(np.float32).tolist(),
                    e.map_size,
                    e.extent_deg,
                    _num(dist),
                )
            )
    return pd.DataFrame(
        rows,
        columns=[
            "layer_idx",
            "channel",
            "y",
            "x",
            "method",
            "site_id",
            "x_deg",
            "y_deg",
            "size_deg",
            "map",
            "map_size",
            "extent_deg",
            "distance_deg",
        ],
    )


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def site_centres(con, dataset: str) -> dict[str, tuple[float, float]]:
    """site_id -> mapped receptive-field centre (degrees), where the dataset has one."""
    rows = con.execute(
        "SELECT site_id, rf_x_deg, rf_y_deg FROM sites WHERE dataset = ? AND rf_x_deg IS NOT NULL "
        "AND rf_y_deg IS NOT NULL",
        [dataset],
    ).fetchall()
    return {s: (float(x), float(y)) for s, x, y in rows}


def run_receptive_fields(ctx: AnalysisContext) -> None:
    """Both methods for every site's best unit; replaces this (dataset, model)'s site rows (requested units stay)."""
    best = ctx.best_matches()
    best = best[best["r"].notna()].sort_values("idx")
    units = common.units_of(best)
    site_of: dict[Unit, str | None] = {}
    for u, s in zip(units, best["site_id"], strict=True):
        site_of.setdefault(u, s)
    paper = ctx.protocol == "paper"
    if common.is_random_control(ctx.con, ctx.model):
        ctx.con.execute("DELETE FROM receptive_fields WHERE dataset = ? AND model = ?", [ctx.dataset, ctx.model])
        common.record_note(
            ctx,
            f"{ctx.model} is a random control: its activations do not depend on the image, so "
            "its units have no receptive field (nothing computed or stored)",
        )
        return
    estimates = compute_unit_rfs(ctx.con, ctx.dataset, ctx.model, units, ctx.store, methods=("mapping",))
    grad_units = units
    regions = set(best["region"])
    if not paper and regions & set(DEFAULT_GRADIENT_REGIONS):
        grad_units = common.units_of(best[best["region"].isin(DEFAULT_GRADIENT_REGIONS)])
    estimates.update(
        compute_unit_rfs(
            ctx.con,
            ctx.dataset,
            ctx.model,
            grad_units,
            ctx.store,
            seed=ctx.seed,
            methods=("gradient",),
            n_gradient_images=N_GRADIENT_IMAGES if paper else N_GRADIENT_IMAGES_DEFAULT,
        )
    )
    rows = rf_rows(estimates, site_of, site_centres(ctx.con, ctx.dataset))
    ctx.con.execute(
        "DELETE FROM receptive_fields WHERE dataset = ? AND model = ? AND site_id IS NOT NULL", [ctx.dataset, ctx.model]
    )
    if not rows.empty:
        # a requested row of the same unit and method is superseded by the site's row
        _delete_units(ctx.con, ctx.dataset, ctx.model, rows)
        common.append_rows(ctx.con, "receptive_fields", ctx.dataset, ctx.model, rows)
    if common.is_pixels_control(ctx.con, ctx.model):
        common.record_note(
            ctx,
            "a pixels unit's gradient field is the pixel itself (trivial); its mapping field "
            "follows the physiological protocol like any model's",
        )
    elif grad_units and not estimates.get("gradient"):
        common.record_note(
            ctx,
            f"no gradient receptive fields: {ctx.model} cannot be rebuilt as a torch network "
            "here (or it does not reproduce the stored activations); mapping fields only",
        )
    else:
        common.record_note(ctx, None)
    for method in ("mapping", "gradient"):
        d = rows.loc[rows["method"] == method, "distance_deg"].dropna()
        if len(d):
            log.info(
                "receptive_fields %s x %s %s: median distance to the site's field %.2f deg (%d units)",
                ctx.dataset,
                ctx.model,
                method,
                float(d.median()),
                len(d),
            )


def _delete_units(con, dataset: str, model: str, rows: pd.DataFrame) -> None:
    keys = rows[["layer_idx", "channel", "y", "x", "method"]].copy()
    con.register("_rf_keys", keys)
    try:
        con.execute(
            "DELETE FROM receptive_fields r USING _rf_keys k WHERE r.dataset = ? AND r.model = ? AND "
            "r.layer_idx = k.layer_idx AND r.channel = k.channel AND r.y = k.y AND r.x = k.x AND "
            "r.method = k.method",
            [dataset, model],
        )
    finally:
        con.unregister("_rf_keys")


def store_requested(con, dataset: str, model: str, estimates: dict[str, dict[Unit, RFEstimate]]) -> pd.DataFrame:
    """Write rows for units asked for with `rf` (site_id NULL), replacing earlier rows of the same unit and method.

    A unit that is some site's best unit keeps that site's link (and distance)."""
    units = {u for by_unit in estimates.values() for u in by_unit}
    linked = con.execute(
        "SELECT layer_idx, channel, y, x, method, site_id FROM receptive_fields WHERE dataset = ? "
        "AND model = ? AND site_id IS NOT NULL",
        [dataset, model],
    ).df()
    site_of: dict[Unit, str | None] = {}
    for u, s in zip(common.units_of(linked), linked["site_id"], strict=True):
        if u in units:
            site_of.setdefault(u, s)
    rows = rf_rows(estimates, site_of, site_centres(con, dataset))
    if not rows.empty:
        _delete_units(con, dataset, model, rows)
        common.append_rows(con, "receptive_fields", dataset, model, rows)
    return rows


register(
    Analysis(
        "receptive_fields",
        "receptive fields of every site's best unit: gradient (torch models) and 8x8 squares mapping (Fig. S2)",
        run_receptive_fields,
        default_models="main",
    )
)
