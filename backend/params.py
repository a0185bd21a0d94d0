"""URL parameters, checked against this build: the one place pages (and their exports) validate them.

Every check raises NotFoundError with a message a person can act on (pages show it as a friendly error,
exports as a 400), before any query uses the value. Defaults, when the URL leaves a parameter out:

- dataset: the first dataset (`require_dataset`);
- model: backend.catalog.PREFERRED_MODEL when it is matched on the dataset, else the first matched one;
- region: the one default rule for every page (`require_region`): the page's preferred region when the
  dataset has it -- V4 (DEFAULT_REGION) unless the page says otherwise; the Overview prefers IT -- else
  the dataset's first region in site order;
- site: the first site (of the region, when one is given);
- a choice (metric, size, variant, condition, top, ...): the page's default, else the first choice;
- a number (rank, page, layer, unit coordinates): a whole number in range, else its default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backend import catalog
from backend.catalog import PREFERRED_MODEL, require_dataset
from backend.commands import run_command
from backend.errors import NotComputedError, NotFoundError

__all__ = [
    "DEFAULT_REGION",
    "Filters",
    "Unit",
    "require_choice",
    "require_dataset",
    "require_model",
    "require_number",
    "require_region",
    "require_site",
    "require_unit",
    "resolve_filters",
    "whole_number",
]

DEFAULT_REGION = "V4"


@dataclass(frozen=True)
class Filters:
    """The global filters every results page honours (all carried in the URL)."""

    dataset: str
    model: str
    region: str
    layer: int | None = None


@dataclass(frozen=True)
class Unit:
    """One unit of a model, validated against its layer table."""

    layer_idx: int
    channel: int
    y: int
    x: int
    layer: str
    depth: float
    channels: int
    height: int
    width: int

    @property
    def flat_index(self) -> int:
        """Index within the layer's output, `c*H*W + y*W + x` (DESIGN.md, Units)."""
        return self.channel * self.height * self.width + self.y * self.width + self.x

    @property
    def label(self) -> str:
        return f"{self.layer} [c{self.channel}, y{self.y}, x{self.x}]"

    def key(self) -> tuple[int, int, int, int]:
        return (self.layer_idx, self.channel, self.y, self.x)


def _missing(value) -> bool:
    return value is None or value == ""


def whole_number(name: str, raw, default: int | None = None, *, what: str = "a whole number") -> int:
    """An integer from a URL parameter or a number field (an integral float counts); `default` when empty."""
    if _missing(raw):
        if default is None:
            raise NotFoundError(f"{name} is missing: give {what}")
        return default
    if isinstance(raw, bool):
        raise NotFoundError(f"{name} must be {what}, got {str(raw)[:40]!r}")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if raw.is_integer():
            return int(raw)
        raise NotFoundError(f"{name} must be {what}, got {raw!r}")
    text = str(raw).strip()
    if not text.lstrip("-").isdigit() or len(text) > 9:
        raise NotFoundError(f"{name} must be {what}, got {str(raw)[:40]!r}")
    return int(text)


def require_number(
    name: str, raw, lo: int, hi: int, default: int | None = None, *, what: str = "a whole number", where: str = ""
) -> int:
    """A whole number in lo..hi (inclusive); `where` ends the out-of-range message (" for layer 3 of m")."""
    value = whole_number(name, raw, default, what=what)
    if not lo <= value <= hi:
        raise NotFoundError(f"{name} {value} is out of range {lo}..{hi}{where}")
    return value


def require_choice(
    name: str, value, choices: Sequence[str], default: str | None = None, *, unknown: str | None = None
) -> str:
    """One of `choices`; an empty value gives `default` (else the first choice).

    The error says "<name> must be one of <choices>, got <value>"; with `unknown` (for long lists of
    names from the data) "unknown <name> <value><unknown>", e.g. unknown="; this dataset has A, B".
    """
    if _missing(value):
        if default is None and not choices:
            raise NotFoundError(f"no {name} to choose from")
        return choices[0] if default is None else default
    if value not in choices:
        if unknown is not None:
            raise NotFoundError(f"unknown {name} {str(value)[:40]!r}{unknown}")
        raise NotFoundError(f"{name} must be one of {', '.join(map(str, choices))}, got {str(value)[:40]!r}")
    return value


def require_region(dataset: str, region, *, prefer: str = DEFAULT_REGION) -> str:
    """The region to show (see the module's rule): the requested one, which the dataset must have."""
    regions = catalog.regions(dataset)
    if _missing(region):
        if not regions:
            raise NotFoundError(f"no sites in {dataset}")
        return prefer if prefer in regions else regions[0]
    if region not in regions:
        raise NotFoundError(f"unknown region {str(region)[:40]!r}; this dataset has {', '.join(regions)}")
    return region


def require_model(dataset: str, model, default: str | None = None) -> str:
    """A model matched on the dataset: the requested one, else `default`, else the preferred or first one."""
    names = catalog.matched_models(dataset)["model"].tolist()
    if _missing(model):
        if default is not None:
            return default
        return PREFERRED_MODEL if PREFERRED_MODEL in names else names[0]
    if model not in names:
        raise NotFoundError(f"model {str(model)[:60]!r} is not matched on {dataset}; matched: {', '.join(names)}")
    return model


def require_site(dataset: str, site_id, region: str | None = None) -> str:
    """The requested site (of `region`, when given), else the first one."""
    frame = catalog.sites(dataset)
    if region:
        frame = frame[frame["region"] == region]
    if _missing(site_id):
        if frame.empty:
            raise NotFoundError(f"no {region + ' ' if region else ''}sites in {dataset}")
        return frame["site_id"].iloc[0]
    if site_id not in set(frame["site_id"]):
        raise NotFoundError(f"unknown site {str(site_id)[:60]!r}" + (f" in region {region}" if region else ""))
    return site_id


def resolve_filters(dataset=None, model=None, region=None, layer=None, *, need_layer: bool = False) -> Filters:
    """The global filters of a results page, validated and with their defaults (raise NotFound/NotComputed)."""
    dataset = require_dataset(dataset)
    if catalog.matched_models(dataset).empty:
        raise NotComputedError(f"Matching on {dataset}", run_command(dataset))
    model = require_model(dataset, model)
    region = require_region(dataset, region)
    layer_idx = None
    if need_layer or not _missing(layer):
        n_layers = len(catalog.layers(model))
        if _missing(layer):
            layer_idx = catalog.default_layer(dataset, model, region)
        else:
            layer_idx = require_number("layer", layer, 0, n_layers - 1, what="a layer index", where=f" for {model}")
    return Filters(dataset, model, region, layer_idx)


def require_unit(model: str, layer_idx, channel, y=None, x=None) -> Unit:
    """Validate a unit's coordinates against the model's layer table (before any query uses them).

    y and x default to 0 (1-D outputs have y = x = 0). Raises NotFoundError naming the valid range.
    """
    frame = catalog.layers(model)
    if frame.empty:
        raise NotFoundError(f"model {str(model)[:60]!r} has no layers in this build")
    layer_idx = require_number("layer_idx", layer_idx, 0, len(frame) - 1, where=f" for {model}")
    row = frame.set_index("layer_idx").loc[layer_idx]
    where = f" for layer {layer_idx} ({row.layer}) of {model}"
    coords = {
        name: require_number(name, raw, 0, size - 1, None if name == "channel" else 0, where=where)
        for name, raw, size in (
            ("channel", channel, int(row.channels)),
            ("y", y, int(row.height)),
            ("x", x, int(row.width)),
        )
    }
    return Unit(
        layer_idx,
        coords["channel"],
        coords["y"],
        coords["x"],
        str(row.layer),
        float(row.depth),
        int(row.channels),
        int(row.height),
        int(row.width),
    )
