"""The app's data functions: one call per figure or table, cached by build id.

Callbacks call exactly one of these and hand the DataFrame to a pure figure function. Arguments are
validated against what the database holds before any query uses them (a bad URL parameter raises
`NotFoundError`, which pages show as a friendly message).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend import queries
from backend.cache import cached
from backend.config import get_settings
from backend.db import Database, DatabaseMissingError


class NotFoundError(LookupError):
    """A requested dataset, site, stimulus, model ... does not exist in this build."""


class NotComputedError(LookupError):
    """The view needs results this build does not have yet; `command` computes them."""

    def __init__(self, what: str, command: str):
        super().__init__(f"{what} not computed yet")
        self.what = what
        self.command = command


@dataclass(frozen=True)
class Filters:
    """The global filters every results page honours (all carried in the URL)."""

    dataset: str
    model: str
    region: str
    layer: int | None = None


@functools.lru_cache(maxsize=8)
def _database(path: str) -> Database:
    return Database(path)


def database() -> Database:
    return _database(str(get_settings().db_path))


def database_ready() -> bool:
    return database().exists()


def build_id() -> str:
    try:
        return database().build_id()
    except DatabaseMissingError:
        return "missing"


@cached(build_id)
def build_info() -> dict[str, str]:
    return queries.build_info(database())


def analysis_notes(dataset: str, analysis: str | None = None, model: str | None = None) -> list[dict]:
    """What analyses said about this dataset (build_info['analysis_notes'], precompute/analyses/common.py):
    why a model has no rows for an analysis, or fewer than usual. [{analysis, model, note}], sorted."""
    raw = build_info().get("analysis_notes")
    try:
        notes = json.loads(raw) if raw else {}
    except ValueError:
        return []
    out = []
    for key, note in notes.items() if isinstance(notes, dict) else ():
        name, _, rest = str(key).partition(":")
        if not note or not rest.startswith(f"{dataset}:"):
            continue
        who = rest[len(dataset) + 1:]
        if (analysis is None or name == analysis) and (model is None or who == model):
            out.append({"analysis": name, "model": who, "note": str(note)})
    return sorted(out, key=lambda n: (n["analysis"], n["model"]))


@cached(build_id)
def datasets() -> pd.DataFrame:
    return queries.datasets(database())


def require_dataset(dataset: str | None) -> str:
    """The dataset to show: the requested one if it exists, else the first one (raise if none)."""
    frame = datasets()
    names = frame["dataset"].tolist()
    if not names:
        raise NotFoundError("no dataset in the database yet")
    if dataset is None or dataset == "":
        return names[0]
    if dataset not in names:
        raise NotFoundError(f"unknown dataset {str(dataset)[:80]!r}; available: {', '.join(names)}")
    return dataset


@cached(build_id)
def stimuli(dataset: str) -> pd.DataFrame:
    return queries.stimuli(database(), require_dataset(dataset))


def stimulus_png(dataset: str, stimulus_id: str) -> bytes | None:
    # not cached: PNGs are served by a route with HTTP caching headers
    return queries.stimulus_png(database(), dataset, stimulus_id)


@cached(build_id)
def sites(dataset: str) -> pd.DataFrame:
    return queries.sites(database(), require_dataset(dataset))


@cached(build_id)
def site_correlations(dataset: str, region: str) -> pd.DataFrame:
    """Site-by-site Pearson correlation of trial-averaged responses over stimuli (Figure S12).

    Long format: site_a, site_b, r, with sites in array order (site idx).
    """
    with database().pinned():
        site_df, matrix = queries.response_matrix(database(), require_dataset(dataset), region)
    if len(site_df) == 0:
        return pd.DataFrame(columns=["site_a", "site_b", "r"])
    corr = np.corrcoef(matrix.astype(np.float64))
    ids = site_df["site_id"].to_numpy()
    return pd.DataFrame({
        "site_a": np.repeat(ids, len(ids)),
        "site_b": np.tile(ids, len(ids)),
        "r": corr.ravel(),
    })


@cached(build_id)
def site_rf(dataset: str, site_id: str) -> pd.DataFrame:
    return queries.site_rf_map(database(), require_dataset(dataset), site_id)


# ---------------------------------------------------------------- models and matches
@cached(build_id)
def models() -> pd.DataFrame:
    return queries.models(database())


@cached(build_id)
def matched_models(dataset: str) -> pd.DataFrame:
    return queries.matched_models(database(), require_dataset(dataset))


@cached(build_id)
def layers(model: str) -> pd.DataFrame:
    return queries.layers(database(), model)


PREFERRED_MODEL = "efficientnet-lite0"


def analyze_command(dataset: str, model: str | None, analysis: str) -> str:
    """The command that computes `analysis` for (dataset, model): what an empty state tells the user to run."""
    return (f"python -m precompute analyze --dataset {dataset}" + (f" --model {model}" if model else "")
            + f" --only {analysis}")


def resolve_filters(dataset=None, model=None, region=None, layer=None, *, need_layer: bool = False) -> Filters:
    """Validate URL parameters against this build and fill in defaults (raise NotFound/NotComputed)."""
    dataset = require_dataset(dataset)
    matched = matched_models(dataset)
    if matched.empty:
        raise NotComputedError(f"Matching on {dataset}",
                               f"python -m precompute run --dataset {dataset} --model efficientnet-lite0")
    names = matched["model"].tolist()
    if model in (None, ""):
        model = PREFERRED_MODEL if PREFERRED_MODEL in names else names[0]
    elif model not in names:
        raise NotFoundError(f"model {str(model)[:60]!r} is not matched on {dataset}; matched: {', '.join(names)}")
    regions = list(dict.fromkeys(sites(dataset)["region"]))
    if region in (None, ""):
        region = "V4" if "V4" in regions else regions[0]
    elif region not in regions:
        raise NotFoundError(f"unknown region {str(region)[:40]!r}; this dataset has {', '.join(regions)}")
    layer_idx = None
    if need_layer or layer not in (None, ""):
        n_layers = len(layers(model))
        if layer in (None, ""):
            layer_idx = default_layer(dataset, model, region)
        else:
            try:
                layer_idx = int(layer)
            except (TypeError, ValueError):
                raise NotFoundError(f"layer must be a layer index, got {str(layer)[:40]!r}") from None
            if not 0 <= layer_idx < n_layers:
                raise NotFoundError(f"layer {layer_idx} is out of range 0..{n_layers - 1} for {model}")
    return Filters(dataset, model, region, layer_idx)


def require_site(dataset: str, site_id: str | None, region: str | None = None) -> str:
    frame = sites(dataset)
    if region:
        frame = frame[frame["region"] == region]
    if site_id in (None, ""):
        if frame.empty:
            raise NotFoundError(f"no {region} sites in {dataset}")
        return frame["site_id"].iloc[0]
    if site_id not in set(frame["site_id"]):
        raise NotFoundError(f"unknown site {str(site_id)[:60]!r}" + (f" in region {region}" if region else ""))
    return site_id


@cached(build_id)
def default_layer(dataset: str, model: str, region: str) -> int:
    """The region's best layer (highest median best-in-layer r): the model's "V4-like"/"IT-like" layer."""
    frame = layer_best(dataset, model)
    frame = frame[frame["region"] == region]
    if frame.empty:
        return 0
    return int(frame.groupby("layer_idx")["r"].median().idxmax())


@cached(build_id)
def site_matches(dataset: str, model: str, site_id: str) -> pd.DataFrame:
    return queries.site_matches(database(), dataset, model, site_id)


@cached(build_id)
def site_scatter(dataset: str, model: str, site_id: str, rank: int) -> pd.DataFrame | None:
    """Figure 2: the site's standardised responses vs its rank-`rank` unit's, per stimulus.

    Columns: idx, stimulus_id, category, object, neural, unit (both z-scored over stimuli). None when the
    unit's activations were not gathered.
    """
    db = database()
    with db.pinned():
        top = queries.site_matches(db, dataset, model, site_id)
        row = top[top["rank"] == rank]
        if row.empty:
            return None
        row = row.iloc[0]
        values = queries.unit_values(db, dataset, model, int(row.layer_idx), int(row.channel), int(row.y), int(row.x))
        frame = queries.site_responses(db, dataset, site_id)
    if values is None or len(values) != len(frame):
        return None
    frame["neural"] = _zscore(frame["response"].to_numpy(np.float64))
    frame["unit"] = _zscore(values.astype(np.float64))
    frame.attrs.update({"r": float(row.r), "layer": row.layer, "layer_idx": int(row.layer_idx),
                        "channel": int(row.channel), "y": int(row.y), "x": int(row.x)})
    return frame


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else x * 0.0


@cached(build_id)
def best_matches(dataset: str, model: str) -> pd.DataFrame:
    return queries.best_matches(database(), dataset, model)


@cached(build_id)
def layer_best(dataset: str, model: str) -> pd.DataFrame:
    return queries.layer_best(database(), dataset, model)


@cached(build_id)
def runner_ups(dataset: str, model: str, region: str) -> pd.DataFrame:
    return queries.runner_ups(database(), dataset, model, region)


@cached(build_id)
def layer_topk(dataset: str, model: str, layer_idx: int, region: str) -> pd.DataFrame:
    return queries.layer_topk(database(), dataset, model, layer_idx, region)


@cached(build_id)
def featuremap_best(dataset: str, model: str, layer_idx: int, region: str) -> pd.DataFrame:
    return queries.featuremap_best(database(), dataset, model, layer_idx, region)


@cached(build_id)
def depth_across_models(dataset: str) -> pd.DataFrame:
    """Figure S7: every matched model's best-unit depth per site, with region."""
    frames = []
    for model in matched_models(dataset)["model"]:
        best = best_matches(dataset, model)
        frames.append(best.assign(model=model)[["model", "site_id", "region", "depth", "r"]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["model", "site_id", "region", "depth", "r"])


@cached(build_id)
def site_scores(dataset: str, model: str, site_id: str) -> dict[str, float]:
    frame = queries.site_scores(database(), dataset, model, site_id)
    return dict(zip(frame["metric"], frame["value"], strict=True))


# ---------------------------------------------------------------- statistics and analyses
@cached(build_id)
def scores(dataset: str) -> pd.DataFrame:
    return queries.scores(database(), require_dataset(dataset))


@cached(build_id)
def selection_curve(dataset: str) -> pd.DataFrame:
    return queries.selection_curve(database(), require_dataset(dataset))


@cached(build_id)
def model_comparisons(dataset: str) -> pd.DataFrame:
    return queries.model_comparisons(database(), require_dataset(dataset))


@cached(build_id)
def site_metric(dataset: str, metric: str) -> pd.DataFrame:
    return queries.site_metric(database(), require_dataset(dataset), metric)


@cached(build_id)
def rotations(dataset: str) -> pd.DataFrame:
    return queries.rotations(database(), require_dataset(dataset))


@cached(build_id)
def decoding(dataset: str, model: str) -> pd.DataFrame:
    return queries.decoding(database(), dataset, model)


@cached(build_id)
def confusions(dataset: str, model: str, region: str) -> pd.DataFrame:
    return queries.confusions(database(), dataset, model, region)


@cached(build_id)
def unit_receptive_fields(dataset: str, model: str, site_id: str) -> pd.DataFrame:
    return queries.unit_receptive_fields(database(), dataset, model, site_id)


# ---------------------------------------------------------------- one unit (the Unit page)
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


def _whole_number(name: str, raw, default: int | None = None) -> int:
    if raw is None or raw == "":
        if default is None:
            raise NotFoundError(f"{name} is missing: give a whole number")
        return default
    if isinstance(raw, bool):
        raise NotFoundError(f"{name} must be a whole number, got {str(raw)[:40]!r}")
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    if not text.lstrip("-").isdigit() or len(text) > 9:
        raise NotFoundError(f"{name} must be a whole number, got {str(raw)[:40]!r}")
    return int(text)


def require_unit(model: str, layer_idx, channel, y=None, x=None) -> Unit:
    """Validate a unit's coordinates against the model's layer table (before any query uses them).

    y and x default to 0 (1-D outputs have y = x = 0). Raises NotFoundError naming the valid range.
    """
    frame = layers(model)
    if frame.empty:
        raise NotFoundError(f"model {str(model)[:60]!r} has no layers in this build")
    layer_idx = _whole_number("layer_idx", layer_idx)
    if not 0 <= layer_idx < len(frame):
        raise NotFoundError(f"layer_idx {layer_idx} is out of range 0..{len(frame) - 1} for {model}")
    row = frame.set_index("layer_idx").loc[layer_idx]
    coords = {}
    for name, raw, size in (("channel", channel, int(row.channels)), ("y", y, int(row.height)),
                            ("x", x, int(row.width))):
        value = _whole_number(name, raw, None if name == "channel" else 0)
        if not 0 <= value < size:
            raise NotFoundError(f"{name} {value} is out of range 0..{size - 1} for layer {layer_idx} ({row.layer}) "
                                f"of {model}")
        coords[name] = value
    return Unit(layer_idx, coords["channel"], coords["y"], coords["x"], str(row.layer), float(row.depth),
                int(row.channels), int(row.height), int(row.width))


@cached(build_id)
def default_unit(dataset: str, model: str, region: str) -> tuple[int, int, int, int] | None:
    """The unit shown when the URL names none: the region's best-matched unit (highest rank-1 r)."""
    best = best_matches(dataset, model)
    best = best[best["region"] == region]
    if best.empty:
        return None
    row = best.loc[best["r"].idxmax()]
    return int(row.layer_idx), int(row.channel), int(row.y), int(row.x)


UNIT_SITE_COLUMNS = ["site_id", "region", "rank", "layer_rank", "featuremap_best", "r"]


@cached(build_id)
def unit_sites(dataset: str, model: str, layer_idx: int, channel: int, y: int, x: int) -> pd.DataFrame:
    """Every site that has the unit in a top-K list, one row per site: its rank over the whole model
    (`rank`, from matches), within the layer (`layer_rank`), whether it is the site's best unit of its
    feature map (`featuremap_best`), and r. Sorted by rank, then r."""
    long = queries.unit_site_ranks(database(), dataset, model, layer_idx, channel, y, x)
    if long.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            UNIT_SITE_COLUMNS, ["object", "object", "Int64", "Int64", "bool", "float64"], strict=True)})
    wide = long.pivot_table(index=["site_id", "site_idx", "region"], columns="scope", values="rank",
                            aggfunc="min")
    r = long.groupby("site_id")["r"].max()
    out = wide.reset_index()
    frame = pd.DataFrame({
        "site_id": out["site_id"].astype(str),
        "region": out["region"].astype(str),
        "rank": out["model"].astype("Int64") if "model" in out else pd.array([pd.NA] * len(out), dtype="Int64"),
        "layer_rank": out["layer"].astype("Int64") if "layer" in out else pd.array([pd.NA] * len(out),
                                                                                  dtype="Int64"),
        "featuremap_best": out["featuremap"].notna() if "featuremap" in out else False,
        "r": r.reindex(out["site_id"]).to_numpy(np.float64),
        "_site_idx": out["site_idx"].to_numpy(),
    })
    frame = frame.sort_values(["rank", "layer_rank", "r", "_site_idx"], ascending=[True, True, False, True],
                              na_position="last")
    return frame.drop(columns="_site_idx").reset_index(drop=True)


@cached(build_id)
def unit_activity(dataset: str, model: str, layer_idx: int, channel: int, y: int, x: int) -> pd.DataFrame | None:
    """The unit's gathered activation per stimulus (idx, stimulus_id, category, object, activation);
    None when the unit's activations were not gathered."""
    values = queries.unit_values(database(), dataset, model, layer_idx, channel, y, x)
    stim = stimuli(dataset)[["idx", "stimulus_id", "category", "object"]]
    if values is None or len(values) != len(stim):
        return None
    return stim.assign(activation=values.astype(np.float64)).reset_index(drop=True)


@cached(build_id)
def unit_scatter(dataset: str, model: str, layer_idx: int, channel: int, y: int, x: int,
                 site_id: str) -> pd.DataFrame | None:
    """The site's standardised responses vs the unit's standardised activations, per stimulus (the
    columns of `site_scatter`, with r in attrs); None when the unit's activations were not gathered."""
    activity = unit_activity(dataset, model, layer_idx, channel, y, x)
    if activity is None:
        return None
    frame = queries.site_responses(database(), dataset, site_id)
    if len(frame) != len(activity) or not (frame["stimulus_id"].to_numpy() == activity["stimulus_id"].to_numpy()).all():
        return None
    frame["neural"] = _zscore(frame["response"].to_numpy(np.float64))
    frame["unit"] = _zscore(activity["activation"].to_numpy(np.float64))
    r = float(np.mean(frame["neural"] * frame["unit"])) if frame["unit"].std() > 0 else float("nan")
    frame.attrs.update({"r": r, "layer_idx": layer_idx, "channel": channel, "y": y, "x": x})
    return frame


@cached(build_id)
def unit_rf(dataset: str, model: str, layer_idx: int, channel: int, y: int, x: int) -> pd.DataFrame:
    return queries.unit_rf(database(), dataset, model, layer_idx, channel, y, x)
