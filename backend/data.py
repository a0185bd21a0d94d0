"""The app's data functions: one call per figure or table, cached by build id.

Callbacks call exactly one of these and hand the DataFrame to a pure figure function. The catalogue of
the build (datasets, sites, models, layers: backend.catalog) is re-exported here, so pages call every
data function as `data.*`; URL parameters are checked by backend.params before they reach these.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend import queries
from backend.cache import cached
from backend.catalog import (  # noqa: F401 - re-exported: pages call every data function as data.*
    PREFERRED_MODEL,
    analysis_notes,
    build_id,
    build_info,
    database,
    database_ready,
    datasets,
    default_layer,
    layer_best,
    layers,
    matched_models,
    models,
    regions,
    require_dataset,
    sites,
    stimuli,
    stimulus_png,
)


# ---------------------------------------------------------------- sites
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
    return pd.DataFrame(
        {
            "site_a": np.repeat(ids, len(ids)),
            "site_b": np.tile(ids, len(ids)),
            "r": corr.ravel(),
        }
    )


@cached(build_id)
def site_rf(dataset: str, site_id: str) -> pd.DataFrame:
    return queries.site_rf_map(database(), require_dataset(dataset), site_id)


# ---------------------------------------------------------------- matches
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
    frame.attrs.update(
        {
            "r": float(row.r),
            "layer": row.layer,
            "layer_idx": int(row.layer_idx),
            "channel": int(row.channel),
            "y": int(row.y),
            "x": int(row.x),
        }
    )
    return frame


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else x * 0.0


@cached(build_id)
def best_matches(dataset: str, model: str) -> pd.DataFrame:
    return queries.best_matches(database(), dataset, model)


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
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["model", "site_id", "region", "depth", "r"])
    )


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
        return pd.DataFrame(
            {
                c: pd.Series(dtype=t)
                for c, t in zip(
                    UNIT_SITE_COLUMNS, ["object", "object", "Int64", "Int64", "bool", "float64"], strict=True
                )
            }
        )
    wide = long.pivot_table(index=["site_id", "site_idx", "region"], columns="scope", values="rank", aggfunc="min")
    r = long.groupby("site_id")["r"].max()
    out = wide.reset_index()
    frame = pd.DataFrame(
        {
            "site_id": out["site_id"].astype(str),
            "region": out["region"].astype(str),
            "rank": out["model"].astype("Int64") if "model" in out else pd.array([pd.NA] * len(out), dtype="Int64"),
            "layer_rank": out["layer"].astype("Int64")
            if "layer" in out
            else pd.array([pd.NA] * len(out), dtype="Int64"),
            "featuremap_best": out["featuremap"].notna() if "featuremap" in out else False,
            "r": r.reindex(out["site_id"]).to_numpy(np.float64),
            "_site_idx": out["site_idx"].to_numpy(),
        }
    )
    frame = frame.sort_values(
        ["rank", "layer_rank", "r", "_site_idx"], ascending=[True, True, False, True], na_position="last"
    )
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
def unit_scatter(
    dataset: str, model: str, layer_idx: int, channel: int, y: int, x: int, site_id: str
) -> pd.DataFrame | None:
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
