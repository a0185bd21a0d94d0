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
          (The method is precompute/analyses/rf_gradient.py.)

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

import logging
import math
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from precompute.analyses import common
from precompute.analyses.context import AnalysisContext
from precompute.analyses.registry import Analysis, register
from precompute.analyses.rf_gradient import Unit, gradient_rfs, pixel_rf
from precompute.datasets.rf_mapping import GRID, RFEstimate, estimate_rf, square_grid_stimuli

log = logging.getLogger(__name__)

N_GRADIENT_IMAGES = 64
#: the default protocol's images for the gradient method (--protocol paper: N_GRADIENT_IMAGES). The cost is
#: one backward pass per (unit, image): 0.6-2 s per Lite0 unit for 16 images on 2 (shared) CPU cores.
N_GRADIENT_IMAGES_DEFAULT = 16
#: regions whose sites' best units get a gradient field in the default protocol (Figure S2 shows V4; the
#: mapped fields of IT are too large for a comparison): ~1/3 of the units. --protocol paper: every site.
#: A dataset without these regions gets gradients for every site.
DEFAULT_GRADIENT_REGIONS = ("V4",)


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


# ---------------------------------------------------------------------------------------------- analysis
def compute_unit_rfs(
    ctx: AnalysisContext,
    units: Sequence[Unit],
    *,
    methods: Sequence[str] = ("mapping", "gradient"),
    n_gradient_images: int = N_GRADIENT_IMAGES,
) -> dict[str, dict[Unit, RFEstimate]]:
    """method -> unit -> RFEstimate for the given units of the context's model (what the analysis and `rf`
    share); the gradient method draws its stimuli with the context's seed."""
    model = ctx.model
    out: dict[str, dict[Unit, RFEstimate]] = {m: {} for m in methods}
    units = list(dict.fromkeys(tuple(int(v) for v in u) for u in units))
    if not units:
        return out
    if common.is_random_control(ctx):
        log.info(
            "%s is a random control: its units have no receptive field (activations do not depend on the "
            "image); nothing computed",
            model,
        )
        return out
    image_px, image_deg = ctx.image_geometry()
    if "mapping" in methods:
        t0 = time.perf_counter()
        opened = common.try_open_model(ctx, "mapping receptive fields")
        if opened is not None:
            source = opened[0]
            try:
                out["mapping"] = dict(zip(units, mapping_rfs(source, units, image_px, image_deg), strict=True))
            finally:
                source.close()
        log.info("%s: mapping receptive fields of %d units in %.1f s", model, len(units), time.perf_counter() - t0)
    if "gradient" in methods:
        t0 = time.perf_counter()
        if common.is_pixels_control(ctx):
            size = int(ctx.model_row()["input_size"])
            out["gradient"] = {u: pixel_rf(u[2], u[3], size, image_deg) for u in units}
        else:
            out["gradient"] = gradient_rfs(ctx, units, image_deg, n_gradient_images)
        log.info(
            "%s: gradient receptive fields of %d units in %.1f s", model, len(out["gradient"]), time.perf_counter() - t0
        )
    return out


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


def run_receptive_fields(ctx: AnalysisContext) -> None:
    """Both methods for every site's best unit; replaces this (dataset, model)'s site rows (requested units stay)."""
    best = ctx.best_matches()
    best = best[best["r"].notna()].sort_values("idx")
    units = common.units_of(best)
    site_of: dict[Unit, str | None] = {}
    for u, s in zip(units, best["site_id"], strict=True):
        site_of.setdefault(u, s)
    paper = ctx.protocol == "paper"
    if common.is_random_control(ctx):
        ctx.delete_rows("receptive_fields")
        common.record_note(
            ctx,
            f"{ctx.model} is a random control: its activations do not depend on the image, so "
            "its units have no receptive field (nothing computed or stored)",
        )
        return
    estimates = compute_unit_rfs(ctx, units, methods=("mapping",))
    grad_units = units
    regions = set(best["region"])
    if not paper and regions & set(DEFAULT_GRADIENT_REGIONS):
        grad_units = common.units_of(best[best["region"].isin(DEFAULT_GRADIENT_REGIONS)])
    n_images = N_GRADIENT_IMAGES if paper else N_GRADIENT_IMAGES_DEFAULT
    estimates.update(compute_unit_rfs(ctx, grad_units, methods=("gradient",), n_gradient_images=n_images))
    rows = rf_rows(estimates, site_of, ctx.site_rf_centres())
    ctx.delete_rows("receptive_fields", not_null=("site_id",))
    if not rows.empty:
        # a requested row of the same unit and method is superseded by the site's row
        _replace_units(ctx, rows)
    if common.is_pixels_control(ctx):
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


def _replace_units(ctx: AnalysisContext, rows: pd.DataFrame) -> None:
    """Store `rows`, replacing the stored rows of the same (unit, method)."""
    ctx.delete_rows("receptive_fields", keys=rows[["layer_idx", "channel", "y", "x", "method"]].copy())
    ctx.append_rows("receptive_fields", rows)


def store_requested(ctx: AnalysisContext, estimates: dict[str, dict[Unit, RFEstimate]]) -> pd.DataFrame:
    """Write rows for units asked for with `rf` (site_id NULL), replacing earlier rows of the same unit and method.

    A unit that is some site's best unit keeps that site's link (and distance)."""
    units = {u for by_unit in estimates.values() for u in by_unit}
    linked = ctx.read_rows(
        "receptive_fields", ["layer_idx", "channel", "y", "x", "method", "site_id"], not_null=("site_id",)
    )
    site_of: dict[Unit, str | None] = {}
    for u, s in zip(common.units_of(linked), linked["site_id"], strict=True):
        if u in units:
            site_of.setdefault(u, s)
    rows = rf_rows(estimates, site_of, ctx.site_rf_centres())
    if not rows.empty:
        _replace_units(ctx, rows)
    return rows


register(
    Analysis(
        "receptive_fields",
        "receptive fields of every site's best unit: gradient (torch models) and 8x8 squares mapping (Fig. S2)",
        run_receptive_fields,
        default_models="main",
    )
)
