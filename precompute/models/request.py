"""`AddRequest`: one model to add, as the command line (`models add`) and a batch file's [[model]] give it.

  models add NAME --zoo ZOO_NAME [--untrained [--seed S]] [--weights PATH] [--replace]
  models add NAME --onnx FILE [--input-size N] [--mean M M M --std S S S] [--layers auto|T1,T2,...]
                  [--layout nchw|nhwc] [--replace]
  models add NAME --control pixels [--input-size N] [--replace]
  models add NAME --control random --reference M [--seed S] [--replace]
  models add NAME --control untrained --reference ZOO_NAME [--seed S] [--replace]

Control names by convention (DESIGN.md): pixels, pixels-<size>, random-M, untrained-M.
See docs/add-your-model.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from precompute.core.errors import UserError
from precompute.core.options import option
from precompute.models import add, zoo
from precompute.models.registry import ModelRecord

CONTROLS = ("pixels", "random", "untrained")
LAYOUTS = ("nchw", "nhwc")
#: each option besides the source, as its flag
FLAGS = {
    "untrained": "--untrained",
    "weights": "--weights",
    "input_size": "--input-size",
    "mean": "--mean",
    "std": "--std",
    "layers": "--layers",
    "layout": "--layout",
    "reference": "--reference",
    "seed": "--seed",
}


@dataclass(frozen=True)
class AddRequest:
    """The options of `models add` (a batch file's [[model]] keys are the same names). Exactly one of
    `zoo`, `onnx` and `control` says where the model comes from."""

    name: str
    zoo: str | None = option(help="a zoo name (see `models zoo`), torchvision:<fn> or timm:<name>")
    onnx: Path | None = option(help="an ONNX file")
    control: str | None = option(choices=CONTROLS, help="a control model")
    untrained: bool = option(False, help="--zoo: random-init weights (seed --seed)")
    weights: Path | None = option(help="--zoo: load this local state dict (strict)")
    input_size: int | None = option(help="--onnx: input side for dynamic-size graphs; --control pixels: image side")
    mean: tuple[float, ...] | None = option(help="--onnx: per-channel mean (default ImageNet's)")
    std: tuple[float, ...] | None = option(help="--onnx: per-channel std (default ImageNet's)")
    layers: str | None = option(help="--onnx: auto (activations and blocks by op type) or tensor names, in order")
    layout: str | None = option(choices=LAYOUTS, help="--onnx: every layer's layout (default: detected per layer)")
    reference: str | None = option(help="--control random: a stored model; untrained: a zoo name")
    seed: int | None = option(help="seed of random controls and --untrained (default 0)")
    replace: bool = option(False, help="replace a model of that name (removes every result derived from it)")

    def check(self) -> None:
        """UserError for options that do not go together (checked before adding anything)."""
        sources = [flag for flag, v in (("--zoo", self.zoo), ("--onnx", self.onnx), ("--control", self.control)) if v]
        if len(sources) != 1:
            raise UserError(
                "give exactly one of --zoo, --onnx and --control" + (f" (got {', '.join(sources)})" if sources else "")
            )
        if self.zoo:
            self._reject({"untrained", "weights", "seed"}, "--zoo")
            if self.seed is not None and not self.untrained:
                raise UserError("--seed applies to --untrained zoo models only")
            zoo.get_entry(self.zoo)  # an unknown name: UserError with the close names
        elif self.onnx:
            self._reject({"input_size", "mean", "std", "layers", "layout"}, "--onnx")
        else:
            allowed = {"input_size"} if self.control == "pixels" else {"reference", "seed"}
            self._reject(allowed, f"--control {self.control}")

    def _reject(self, allowed: set[str], mode: str) -> None:
        bad = [flag for key, flag in FLAGS.items() if key not in allowed and getattr(self, key) not in (None, False)]
        if bad:
            raise UserError(f"{', '.join(bad)} do(es) not apply to {mode}")


def add_model(store, request: AddRequest) -> ModelRecord:
    """Check the request, then add the model (building, exporting and probing it first; see add.py)."""
    request.check()
    seed = 0 if request.seed is None else request.seed
    if request.zoo:
        return add.add_zoo_model(
            store,
            request.name,
            request.zoo,
            untrained=request.untrained,
            weights=request.weights,
            replace=request.replace,
            seed=seed,
        )
    if request.onnx:
        return add.add_onnx_model(
            store,
            request.name,
            request.onnx,
            input_size=request.input_size,
            mean=list(request.mean) if request.mean else None,
            std=list(request.std) if request.std else None,
            layers=request.layers or "auto",
            layout=request.layout,
            replace=request.replace,
        )
    return add.add_control(
        store,
        request.name,
        request.control,
        reference=request.reference,
        input_size=request.input_size,
        seed=seed,
        replace=request.replace,
    )
