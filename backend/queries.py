"""Every SQL statement the app and the notebook API run, as named functions with bound parameters.

Rules (STYLE.md): values are always bound (`?`), never formatted into SQL; the few identifiers that
vary come from backend.schema's allowlist. Each function takes a `Database` and returns a DataFrame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend import schema
from backend.db import Database


def build_info(db: Database) -> dict[str, str]:
    df = db.query("SELECT key, value FROM build_info ORDER BY key")
    return dict(zip(df["key"], df["value"], strict=True))


def table_counts(db: Database) -> dict[str, int]:
    out = {}
    for table in schema.TABLES:  # names from the schema allowlist only
        out[table.name] = int(db.query(f'SELECT count(*) AS n FROM "{table.name}"')["n"].iloc[0])
    return out


def datasets(db: Database) -> pd.DataFrame:
    return db.query(
        "SELECT dataset, title, description, source, synthetic, visual_degrees, n_stimuli, n_sites, "
        "n_repetitions, seed FROM datasets ORDER BY synthetic, dataset"
    )


def stimuli(db: Database, dataset: str) -> pd.DataFrame:
    return db.query(
        "SELECT stimulus_id, idx, category, object, variation, ty, tz, s, rxy, rxz, ryz, background_id, "
        "filename, width, height FROM stimuli WHERE dataset = ? ORDER BY idx",
        [dataset],
    )


def stimulus_png(db: Database, dataset: str, stimulus_id: str) -> bytes | None:
    df = db.query("SELECT png FROM stimulus_images WHERE dataset = ? AND stimulus_id = ?", [dataset, stimulus_id])
    return bytes(df["png"].iloc[0]) if len(df) else None


def sites(db: Database, dataset: str) -> pd.DataFrame:
    return db.query(
        "SELECT site_id, idx, region, subregion, animal, electrode_array, reliability, rf_x_deg, rf_y_deg, "
        "rf_size_deg, "
        "true_rf_x_deg, true_rf_y_deg, true_rf_size_deg FROM sites WHERE dataset = ? ORDER BY idx",
        [dataset],
    )


def response_matrix(db: Database, dataset: str, region: str | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Sites (of `region`, or all) x stimuli (idx order) trial-averaged responses, aligned by id."""
    site_df = db.query(
        "SELECT site_id, idx, region FROM sites WHERE dataset = ? AND (? IS NULL OR region = ?) ORDER BY idx",
        [dataset, region, region],
    )
    long = db.query(
        "SELECT s.idx AS site_idx, st.idx AS stim_idx, r.response FROM responses r "
        "JOIN sites s ON s.dataset = r.dataset AND s.site_id = r.site_id "
        "JOIN stimuli st ON st.dataset = r.dataset AND st.stimulus_id = r.stimulus_id "
        "WHERE r.dataset = ? AND (? IS NULL OR s.region = ?)",
        [dataset, region, region],
    )
    n_stim = int(db.query("SELECT count(*) AS n FROM stimuli WHERE dataset = ?", [dataset])["n"].iloc[0])
    row_of = pd.Series(np.arange(len(site_df)), index=site_df["idx"].to_numpy())
    matrix = np.full((len(site_df), n_stim), np.nan, dtype=np.float32)
    if len(long):
        matrix[row_of.loc[long["site_idx"].to_numpy()].to_numpy(), long["stim_idx"].to_numpy()] = long["response"]
    return site_df, matrix


def site_rf_map(db: Database, dataset: str, site_id: str) -> pd.DataFrame:
    return db.query(
        "SELECT m.grid_responses, m.map, m.map_size, m.extent_deg, s.rf_x_deg, s.rf_y_deg, s.rf_size_deg, "
        "s.true_rf_x_deg, s.true_rf_y_deg, s.true_rf_size_deg FROM site_rf_maps m JOIN sites s "
        "ON s.dataset = m.dataset AND s.site_id = m.site_id WHERE m.dataset = ? AND m.site_id = ?",
        [dataset, site_id],
    )


# ---------------------------------------------------------------- models and matches
def models(db: Database) -> pd.DataFrame:
    return db.query(
        "SELECT model, family, source, kind, reference_model, input_size, imagenet_top1, imagenet_top5, parameters, "
        "total_units, n_layers FROM models ORDER BY kind, model"
    )


def matched_models(db: Database, dataset: str) -> pd.DataFrame:
    """Models matched on `dataset` (a match_runs row), with their kind and ImageNet accuracy."""
    return db.query(
        "SELECT m.model, m.kind, m.family, m.reference_model, m.imagenet_top1, r.top_k FROM match_runs r "
        "JOIN models m USING (model) WHERE r.dataset = ? ORDER BY m.kind = 'control', m.model",
        [dataset],
    )


def layers(db: Database, model: str) -> pd.DataFrame:
    return db.query(
        "SELECT layer_idx, layer, op_type, depth, channels, height, width, units FROM layers WHERE model = ? "
        "ORDER BY layer_idx",
        [model],
    )


def site_matches(db: Database, dataset: str, model: str, site_id: str) -> pd.DataFrame:
    """The site's top-K units over the whole model, with layer names."""
    return db.query(
        "SELECT m.rank, m.layer_idx, l.layer, l.depth, m.channel, m.y, m.x, m.r FROM matches m "
        "JOIN layers l ON l.model = m.model AND l.layer_idx = m.layer_idx "
        "WHERE m.dataset = ? AND m.model = ? AND m.site_id = ? ORDER BY m.rank",
        [dataset, model, site_id],
    )


def unit_values(
    db: Database, dataset: str, model: str, layer_idx: int, channel: int, y: int, x: int
) -> np.ndarray | None:
    """A gathered unit's activations over the stimuli (idx order), or None when not gathered."""
    df = db.query(
        "SELECT values FROM unit_activations WHERE dataset = ? AND model = ? AND layer_idx = ? AND channel = ? "
        "AND y = ? AND x = ?",
        [dataset, model, layer_idx, channel, y, x],
    )
    return np.asarray(df["values"].iloc[0], dtype=np.float32) if len(df) else None


def site_responses(db: Database, dataset: str, site_id: str) -> pd.DataFrame:
    """One site's trial-averaged response to every stimulus, in idx order, with stimulus metadata."""
    return db.query(
        "SELECT st.idx, st.stimulus_id, st.category, st.object, r.response FROM responses r "
        "JOIN stimuli st ON st.dataset = r.dataset AND st.stimulus_id = r.stimulus_id "
        "WHERE r.dataset = ? AND r.site_id = ? ORDER BY st.idx",
        [dataset, site_id],
    )


def best_matches(db: Database, dataset: str, model: str) -> pd.DataFrame:
    """Every site's rank-1 unit over the whole model, with region, layer name and depth."""
    return db.query(
        "SELECT s.site_id, s.idx AS site_idx, s.region, m.layer_idx, l.layer, l.depth, m.channel, m.y, m.x, m.r "
        "FROM matches m JOIN sites s ON s.dataset = m.dataset AND s.site_id = m.site_id "
        "JOIN layers l ON l.model = m.model AND l.layer_idx = m.layer_idx "
        "WHERE m.dataset = ? AND m.model = ? AND m.rank = 1 ORDER BY s.idx",
        [dataset, model],
    )


def layer_best(db: Database, dataset: str, model: str) -> pd.DataFrame:
    """Every site's best unit within every layer (rank 1 in the layer), with region and depth."""
    return db.query(
        "SELECT s.site_id, s.region, m.layer_idx, l.layer, l.depth, m.channel, m.y, m.x, m.r "
        "FROM layer_matches m JOIN sites s ON s.dataset = m.dataset AND s.site_id = m.site_id "
        "JOIN layers l ON l.model = m.model AND l.layer_idx = m.layer_idx "
        "WHERE m.dataset = ? AND m.model = ? AND m.rank = 1 ORDER BY m.layer_idx, s.idx",
        [dataset, model],
    )


def runner_ups(db: Database, dataset: str, model: str, region: str) -> pd.DataFrame:
    """Top-K r of every site of a region (sites x ranks), for Figure 7."""
    return db.query(
        "SELECT m.site_id, s.idx AS site_idx, m.rank, m.r FROM matches m "
        "JOIN sites s ON s.dataset = m.dataset AND s.site_id = m.site_id "
        "WHERE m.dataset = ? AND m.model = ? AND s.region = ? ORDER BY s.idx, m.rank",
        [dataset, model, region],
    )


def layer_topk(db: Database, dataset: str, model: str, layer_idx: int, region: str) -> pd.DataFrame:
    """Top-K units within one layer for every site of a region (Figure 8: feature maps and positions)."""
    return db.query(
        "SELECT m.site_id, m.rank, m.channel, m.y, m.x, m.r FROM layer_matches m "
        "JOIN sites s ON s.dataset = m.dataset AND s.site_id = m.site_id "
        "WHERE m.dataset = ? AND m.model = ? AND m.layer_idx = ? AND s.region = ? ORDER BY s.idx, m.rank",
        [dataset, model, layer_idx, region],
    )


def featuremap_best(db: Database, dataset: str, model: str, layer_idx: int, region: str) -> pd.DataFrame:
    """Best unit of every feature map of a layer for every site of a region (Figure S13)."""
    return db.query(
        "SELECT m.site_id, m.channel, m.y, m.x, m.r FROM featuremap_matches m "
        "JOIN sites s ON s.dataset = m.dataset AND s.site_id = m.site_id "
        "WHERE m.dataset = ? AND m.model = ? AND m.layer_idx = ? AND s.region = ?",
        [dataset, model, layer_idx, region],
    )


def site_scores(db: Database, dataset: str, model: str, site_id: str) -> pd.DataFrame:
    return db.query(
        "SELECT metric, value FROM site_scores WHERE dataset = ? AND model = ? AND site_id = ? ORDER BY metric",
        [dataset, model, site_id],
    )


# ---------------------------------------------------------------- statistics and analyses
def scores(db: Database, dataset: str) -> pd.DataFrame:
    """Every population statistic of every model on `dataset`, with the model's facts."""
    return db.query(
        "SELECT s.model, s.region, s.metric, s.value, s.ci_low, s.ci_high, s.ci_scheme, m.kind, m.family, "
        "m.reference_model, "
        "m.imagenet_top1, m.imagenet_top5, m.parameters, m.total_units FROM scores s JOIN models m USING (model) "
        "WHERE s.dataset = ? ORDER BY s.model, s.region, s.metric",
        [dataset],
    )


def selection_curve(db: Database, dataset: str) -> pd.DataFrame:
    return db.query(
        "SELECT model, region, fraction, value, ci_low, ci_high, ci_scheme FROM selection_curve "
        "WHERE dataset = ? ORDER BY model, region, fraction",
        [dataset],
    )


def model_comparisons(db: Database, dataset: str) -> pd.DataFrame:
    """Paired comparisons, the primary (held-out) metric first."""
    return db.query(
        "SELECT region, metric, model_a, model_b, difference, ci_low, ci_high, p_value, p_holm, test, "
        "ci_scheme FROM model_comparisons WHERE dataset = ? "
        "ORDER BY region, metric <> 'heldout_split_half', metric, model_a, model_b",
        [dataset],
    )


def site_metric(db: Database, dataset: str, metric: str) -> pd.DataFrame:
    """One per-site statistic for every model (e.g. pls_r beside the single-unit r, Figure S4)."""
    return db.query(
        "SELECT ss.model, ss.site_id, s.region, ss.value FROM site_scores ss JOIN sites s "
        "ON s.dataset = ss.dataset AND s.site_id = ss.site_id WHERE ss.dataset = ? AND ss.metric = ?",
        [dataset, metric],
    )


def rotations(db: Database, dataset: str) -> pd.DataFrame:
    return db.query(
        "SELECT model, region, layer_idx, basis, run, value FROM rotations WHERE dataset = ? "
        "ORDER BY model, region, basis, run",
        [dataset],
    )


def decoding(db: Database, dataset: str, model: str) -> pd.DataFrame:
    return db.query(
        "SELECT region, train_population, test_population, variant, run, accuracy, chance FROM decoding "
        "WHERE dataset = ? AND model = ? ORDER BY region, variant, train_population, test_population, run",
        [dataset, model],
    )


def confusions(db: Database, dataset: str, model: str, region: str) -> pd.DataFrame:
    return db.query(
        "SELECT train_population, test_population, variant, true_category, predicted_category, fraction "
        "FROM confusions WHERE dataset = ? AND model = ? AND region = ?",
        [dataset, model, region],
    )


def unit_receptive_fields(db: Database, dataset: str, model: str, site_id: str) -> pd.DataFrame:
    """Receptive fields (each method) of the site's best unit, with the distance to this site's field.

    A unit can be several sites' best unit and is stored once, so the join goes through `matches`.
    """
    return db.query(
        "SELECT rf.method, rf.layer_idx, rf.channel, rf.y, rf.x, rf.x_deg, rf.y_deg, rf.size_deg, rf.map, "
        "rf.map_size, rf.extent_deg, sqrt(pow(rf.x_deg - s.rf_x_deg, 2) + pow(rf.y_deg - s.rf_y_deg, 2)) "
        "AS distance_deg FROM matches m JOIN receptive_fields rf ON rf.dataset = m.dataset AND rf.model = m.model "
        "AND rf.layer_idx = m.layer_idx AND rf.channel = m.channel AND rf.y = m.y AND rf.x = m.x "
        "JOIN sites s ON s.dataset = m.dataset AND s.site_id = m.site_id "
        "WHERE m.dataset = ? AND m.model = ? AND m.site_id = ? AND m.rank = 1 ORDER BY rf.method",
        [dataset, model, site_id],
    )


# ---------------------------------------------------------------- one unit (the Unit page)
_UNIT_WHERE = "m.dataset = ? AND m.model = ? AND m.layer_idx = ? AND m.channel = ? AND m.y = ? AND m.x = ?"


def unit_site_ranks(
    db: Database, dataset: str, model: str, layer_idx: int, channel: int, y: int, x: int
) -> pd.DataFrame:
    """Every site that has this unit in one of its top-K lists, one row per (site, list).

    `scope` says which list: `model` (matches: top-K over the whole model), `layer` (layer_matches: top-K
    within the unit's layer) or `featuremap` (featuremap_matches: the best unit of its feature map, rank 1).
    """
    unit = [dataset, model, layer_idx, channel, y, x]
    return db.query(
        "SELECT 'model' AS scope, m.site_id, s.idx AS site_idx, s.region, m.rank, m.r FROM matches m "
        "JOIN sites s ON s.dataset = m.dataset AND s.site_id = m.site_id WHERE " + _UNIT_WHERE + " "
        "UNION ALL SELECT 'layer', m.site_id, s.idx, s.region, m.rank, m.r FROM layer_matches m "
        "JOIN sites s ON s.dataset = m.dataset AND s.site_id = m.site_id WHERE " + _UNIT_WHERE + " "
        "UNION ALL SELECT 'featuremap', m.site_id, s.idx, s.region, 1, m.r FROM featuremap_matches m "
        "JOIN sites s ON s.dataset = m.dataset AND s.site_id = m.site_id WHERE " + _UNIT_WHERE + " "
        "ORDER BY site_idx, scope",
        unit * 3,
    )


def unit_rf(db: Database, dataset: str, model: str, layer_idx: int, channel: int, y: int, x: int) -> pd.DataFrame:
    """The unit's receptive fields (one row per method), where computed."""
    return db.query(
        "SELECT m.method, m.site_id, m.layer_idx, m.channel, m.y, m.x, m.x_deg, m.y_deg, m.size_deg, m.map, "
        "m.map_size, m.extent_deg, m.distance_deg FROM receptive_fields m WHERE " + _UNIT_WHERE + " ORDER BY m.method",
        [dataset, model, layer_idx, channel, y, x],
    )
