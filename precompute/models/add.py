"""Adding and removing models: the workflows behind `models add/remove` and the demo's model steps.

Each add does its slow work (building, exporting, probing) first, writes the ONNX file content-addressed
(idempotent, harmless if the step later fails), then records the model inside one
`store.step("model:<name>")` transaction. Every bad input is a UserError raised before that
transaction, so nothing already stored is touched.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from precompute.core.errors import UserError
from precompute.core.steps import model_step
from precompute.models import registry, zoo
from precompute.models.controls import PIXELS_DEFAULT_SIZE, pixels_layers, pixels_size
from precompute.models.export import export_with_layers
from precompute.models.onnx_import import import_onnx
from precompute.models.registry import ModelRecord

log = logging.getLogger(__name__)


def _commit(store, record: ModelRecord, layers, *, replace: bool, seeds: int | None = None, extra=None) -> None:
    """Record the model in one step (replacing removes every derived result); drop a replaced, unused ONNX file."""
    with store.connect() as con:
        old = con.execute("SELECT onnx_path FROM models WHERE model = ?", [record.model]).fetchone()
    with store.step(model_step(record.model)) as con:
        registry.write_model(con, record, layers, replace=replace)
        store.forget_derived(con, model=record.model)  # a replaced model's results were removed with it
        if seeds is not None:
            store.record(con, "seeds", model_step(record.model), int(seeds))
        for key, entry, value in extra or ():
            store.record(con, key, entry, value)
    if old and old[0] and old[0] != record.onnx_path:
        with store.connect() as con:
            registry.delete_unreferenced_onnx(con, registry.data_folder(store), old[0])


def _precheck(store, name: str, replace: bool) -> None:
    """Fail fast on a duplicate name, before any slow work."""
    with store.connect() as con:
        registry.check_new_name(con, name, replace)


def add_zoo_model(
    store,
    name: str,
    zoo_name: str,
    *,
    untrained: bool = False,
    weights: Path | None = None,
    replace: bool = False,
    seed: int = 0,
) -> ModelRecord:
    """Build a zoo model (pretrained, from a local state dict, or untrained), export it, record it."""
    entry = zoo.get_entry(zoo_name)
    if untrained and weights is not None:
        raise UserError("--untrained and --weights exclude each other: an untrained model has random weights")
    _precheck(store, name, replace)
    data_dir = registry.data_folder(store)
    model = zoo.build(
        entry,
        pretrained=not untrained,
        weights=Path(weights) if weights else None,
        seed=seed,
        cache_dir=data_dir / "cache" / "weights",
    )
    result, data = _export_bytes(model, entry.input_size, data_dir)
    onnx_path, sha = registry.store_onnx_bytes(data, data_dir)
    kind = "untrained" if untrained else "pretrained"
    source = f"{entry.library}:{entry.constructor}"
    if weights is not None:
        source += f" weights={Path(weights).name}"
    elif untrained:
        source += f" random init seed={seed}"
    elif entry.library != "wheel" and entry.weights:
        source += f" weights={entry.weights}"
    record = ModelRecord(
        model=name,
        family=entry.family,
        source=source,
        kind=kind,
        input_size=entry.input_size,
        in_channels=3,
        mean=list(entry.mean),
        std=list(entry.std),
        reference_model=entry.name if untrained else None,
        imagenet_top1=None if untrained else entry.imagenet_top1,
        imagenet_top5=None if untrained else entry.imagenet_top5,
        parameters=result.parameters,
        layout="nchw",
        onnx_path=onnx_path,
        sha256=sha,
    )
    _commit(
        store,
        record,
        result.layers,
        replace=replace,
        seeds=seed if untrained else None,
        extra=[("exports", name, {"method": result.method, "seconds": round(result.seconds, 2)})],
    )
    log.info(
        "added %s: %d layers, %d units (%s export %.1f s)",
        name,
        len(result.layers),
        sum(la.units for la in result.layers),
        result.method,
        result.seconds,
    )
    return record


def _export_bytes(model, input_size: int, data_dir: Path):
    work = data_dir / "cache" / "exports"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        path = Path(tmp) / "model.onnx"
        result = export_with_layers(model, input_size, path)
        return result, path.read_bytes()


def add_onnx_model(
    store,
    name: str,
    file: Path,
    *,
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    layers: str = "auto",
    layout: str | None = None,
    replace: bool = False,
) -> ModelRecord:
    """Import a user's ONNX file with its layers exposed, store it content-addressed, record it."""
    if layout not in (None, "nchw", "nhwc"):
        raise UserError(f"--layout must be nchw or nhwc, not {layout!r}")
    _precheck(store, name, replace)
    imported = import_onnx(file, input_size=input_size, layers=layers, layout=layout)
    mean_v, std_v = _norm(mean, std, imported.in_channels)
    data_dir = registry.data_folder(store)
    onnx_path, sha = registry.store_onnx_bytes(imported.model_bytes, data_dir)
    record = ModelRecord(
        model=name,
        family="onnx",
        source=f"onnx file {Path(file).name}",
        kind="onnx",
        input_size=imported.input_size,
        in_channels=imported.in_channels,
        mean=mean_v,
        std=std_v,
        parameters=imported.parameters,
        layout=imported.layout,
        onnx_path=onnx_path,
        sha256=sha,
    )
    _commit(store, record, imported.layers, replace=replace, extra=[("input_hashes", str(Path(file).name), sha)])
    return record


def _norm(mean, std, channels: int) -> tuple[list[float], list[float]]:
    if mean is None or std is None:
        if mean is not None or std is not None:
            raise UserError("give both --mean and --std, or neither (then ImageNet's are used)")
        mean, std = zoo.IMAGENET_MEAN, zoo.IMAGENET_STD
        if channels == 1:  # a grayscale input: the mean of ImageNet's three channels
            mean, std = [sum(mean) / 3], [sum(std) / 3]
        log.warning(
            "no --mean/--std given: using ImageNet's%s (%s / %s); give your model's own with --mean/--std",
            " channel average" if channels == 1 else "",
            " ".join(f"{v:.3f}" for v in mean),
            " ".join(f"{v:.3f}" for v in std),
        )
    mean, std = [float(v) for v in mean], [float(v) for v in std]
    for what, vals in (("--mean", mean), ("--std", std)):
        if len(vals) not in (1, channels):
            raise UserError(f"{what} needs {channels} value(s) (or 1 for all channels), got {len(vals)}")
    if any(v <= 0 for v in std):
        raise UserError("--std values must be positive")
    return (mean * channels if len(mean) == 1 else mean), (std * channels if len(std) == 1 else std)


def add_pixels(store, name: str = "pixels", *, input_size: int | None = None, replace: bool = False) -> ModelRecord:
    """The `pixels` control: one layer, the model-sized grayscale input (224 px unless `pixels-<size>`)."""
    size = input_size or pixels_size(name) or PIXELS_DEFAULT_SIZE
    if size <= 0:
        raise UserError(f"the pixels size must be positive, not {size}")
    _precheck(store, name, replace)
    record = ModelRecord(
        model=name,
        family="pixels",
        source="control",
        kind="control",
        input_size=size,
        in_channels=1,
        mean=[0.0],
        std=[1.0],
    )
    _commit(store, record, pixels_layers(size), replace=replace)
    return record


def add_random(store, name: str, reference: str, *, seed: int = 0, replace: bool = False) -> ModelRecord:
    """The `random-M` control: M's layer names and shapes, N(0, 1) activations per (seed, stimulus, layer)."""
    _precheck(store, name, replace)
    with store.connect() as con:
        ref = registry.read_model(con, reference)
        layers = registry.read_layers(con, reference)
    record = ModelRecord(
        model=name,
        family="random",
        source=f"control: normal activations, seed {seed}",
        kind="control",
        reference_model=reference,
        input_size=int(ref["input_size"]),
        in_channels=int(ref["in_channels"]),
        mean=ref["mean"],
        std=ref["std"],
        parameters=0,
        layout="nchw",
    )
    _commit(store, record, layers, replace=replace, seeds=seed)
    return record


def add_control(
    store,
    name: str,
    control: str,
    *,
    reference: str | None = None,
    input_size: int | None = None,
    seed: int = 0,
    replace: bool = False,
) -> ModelRecord:
    """`--control pixels|random|untrained`: dispatch with the checks the CLI needs."""
    if control == "pixels":
        return add_pixels(store, name, input_size=input_size, replace=replace)
    if reference is None:
        raise UserError(f"--control {control} needs --reference M (e.g. --reference efficientnet-lite0)")
    if control == "random":
        return add_random(store, reference=reference, name=name, seed=seed, replace=replace)
    if control == "untrained":
        return add_zoo_model(store, name, reference, untrained=True, seed=seed, replace=replace)
    raise UserError(f"unknown control {control!r}: use pixels, random or untrained")


def remove(store, name: str) -> None:
    """Remove a model and every result derived from it, in one transaction; then drop its unused ONNX file."""
    with store.connect() as con:
        registry.read_model(con, name)  # UserError listing close names when absent
    with store.step(f"remove:model:{name}", record=False) as con:
        onnx_path = registry.remove_model(con, name)
        store.forget_derived(con, model=name)
    with store.connect() as con:
        registry.delete_unreferenced_onnx(con, registry.data_folder(store), onnx_path)
