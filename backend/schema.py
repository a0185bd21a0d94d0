"""The DuckDB schema: the single source of truth for every table and column.

The precompute writer creates tables from here, the backend queries read them, and the test fixtures
build miniature databases with them. Every column is documented where it is declared.

Conventions (DESIGN.md, Contracts): ids are strings; `stimuli.idx` (0..n-1) is the one order used by
every stored array; a unit is (layer_idx, channel, y, x); `r` is a Pearson correlation over stimuli.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    doc: str
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    #: issue that writes it (skeleton, models, matching, statistics, analyses)
    owner: str = "skeleton"
    #: declare `key` as a PRIMARY KEY. Only for small tables: DuckDB builds an ART index for it, which
    #: costs time and file size on the big ones (responses, trials, matches), where the writer keeps
    #: keys unique and the contract test checks them.
    enforce_key: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def ddl(self) -> str:
        cols = []
        for c in self.columns:
            cols.append(f'"{c.name}" {c.type}' + ("" if c.nullable else " NOT NULL"))
        if self.key and self.enforce_key:
            cols.append("PRIMARY KEY (" + ", ".join(f'"{k}"' for k in self.key) + ")")
        return f'CREATE TABLE IF NOT EXISTS "{self.name}" (\n  ' + ",\n  ".join(cols) + "\n)"


def C(name: str, type_: str, doc: str, nullable: bool = True) -> Column:  # noqa: N802 - short on purpose
    return Column(name, type_, doc, nullable)


DATASET = C("dataset", "VARCHAR", "dataset name (e.g. synthetic-hvm)", False)
MODEL = C("model", "VARCHAR", "model name (e.g. efficientnet-lite0, pixels, random-efficientnet-lite0)", False)
SITE = C("site_id", "VARCHAR", "recording site id (e.g. Chabo_L_M_5_9, V4-017)", False)
STIM = C("stimulus_id", "VARCHAR", "stimulus id (HvM: the image's SHA1)", False)
REGION = C("region", "VARCHAR", "brain region (V4, IT, ...)", False)
LAYER_IDX = C("layer_idx", "INTEGER", "0-based layer index in network order (layers.layer_idx)", False)
CHANNEL = C("channel", "INTEGER", "feature-map (channel) index of the unit", False)
UY = C("y", "INTEGER", "row of the unit in its feature map (0 for 1-D outputs)", False)
UX = C("x", "INTEGER", "column of the unit in its feature map (0 for 1-D outputs)", False)
R = C("r", "FLOAT", "Pearson r over stimuli between the site's response and the unit's activation", False)
VALUE = C("value", "DOUBLE", "the statistic's value")
CI_LOW = C("ci_low", "DOUBLE", "lower end of the 95% bootstrap interval (NULL when not computed)")
CI_HIGH = C("ci_high", "DOUBLE", "upper end of the 95% bootstrap interval (NULL when not computed)")
CI_SCHEME = C("ci_scheme", "VARCHAR", "what the interval resamples, e.g. 'sites by animal/array (6) x stimuli by "
              "object (64), 1000 resamples' (NULL: no interval, or written before schemes were stored)")
METRIC = C("metric", "VARCHAR", "statistic name (see docs/metrics.md)", False)

TABLES: tuple[Table, ...] = (
    Table(
        "build_info",
        "Key/value facts about this build: what made every result in the file.",
        (
            C("key", "VARCHAR", "schema_version, build_id, published_at, steps_done (JSON list), "
              "step:<name> (JSON: finished_at, seconds), packages (JSON), seeds (JSON), "
              "input_hashes (JSON: file -> sha256), analysis_inputs (JSON: step -> the inputs it ran on), "
              "cluster_tasks (JSON), commit_id (the last committed step: a served file with another one is "
              "published again before the next write)", False),
            C("value", "VARCHAR", "the value, JSON where structured"),
        ),
        key=("key",),
        enforce_key=True,
    ),
    Table(
        "datasets",
        "One row per imported or generated dataset.",
        (
            DATASET,
            C("title", "VARCHAR", "human-readable title"),
            C("description", "VARCHAR", "what the dataset is and where it came from"),
            C("source", "VARCHAR", "synth | brainio | hvm-hdf5 | folder"),
            C("synthetic", "BOOLEAN", "true for generated data: the app labels it 'synthetic'", False),
            C("visual_degrees", "DOUBLE", "width of the stimuli in degrees of visual angle"),
            C("n_stimuli", "INTEGER", "number of stimuli"),
            C("n_sites", "INTEGER", "number of sites"),
            C("n_repetitions", "INTEGER", "repetitions per stimulus (median over stimuli; NULL without trials)"),
            C("seed", "BIGINT", "generator seed (synthetic datasets)"),
            C("created_at", "TIMESTAMP", "when it was written"),
            C("input_hash", "VARCHAR", "sha256 of the inputs it was made from"),
        ),
        key=("dataset",),
        enforce_key=True,
    ),
    Table(
        "stimuli",
        "Stimulus metadata; `idx` is the order of every stored array over stimuli.",
        (
            DATASET,
            STIM,
            C("idx", "INTEGER", "0..n-1: the one order used by every stored array", False),
            C("category", "VARCHAR", "object category (HvM: Animals, Boats, ...)"),
            C("object", "VARCHAR", "object name"),
            C("variation", "INTEGER", "HvM variation level (0, 3, 6)"),
            C("ty", "DOUBLE", "horizontal position (HvM units: 1.0 = half the image)"),
            C("tz", "DOUBLE", "vertical position (HvM units)"),
            C("s", "DOUBLE", "scale"),
            C("rxy", "DOUBLE", "rotation in the image plane (degrees)"),
            C("rxz", "DOUBLE", "rotation in depth about the vertical axis (degrees)"),
            C("ryz", "DOUBLE", "rotation in depth about the horizontal axis (degrees)"),
            C("background_id", "VARCHAR", "background image id"),
            C("filename", "VARCHAR", "original file name"),
            C("width", "INTEGER", "image width in pixels"),
            C("height", "INTEGER", "image height in pixels"),
            C("extra", "VARCHAR", "any other metadata columns, as a JSON object"),
        ),
        key=("dataset", "stimulus_id"),
        enforce_key=True,
    ),
    Table(
        "stimulus_folds",
        "Cross-validation folds: every stimulus in one of 10 folds, stratified by object (else category), "
        "seeded by the dataset's name (precompute/datasets/folds.py). Every held-out score selects on folds "
        "0..t-1 and scores on the rest (docs/metrics.md), the same folds for every model.",
        (DATASET, STIM, C("fold", "INTEGER", "0..9", False)),
        key=("dataset", "stimulus_id"),
    ),
    Table(
        "stimulus_images",
        "The stimulus images themselves (PNG bytes), apart from `stimuli` so metadata scans stay small.",
        (DATASET, STIM, C("png", "BLOB", "the image as PNG (8-bit grayscale or RGB)", False)),
        key=("dataset", "stimulus_id"),
    ),
    Table(
        "sites",
        "Recording sites with their region, reliability and (where known) receptive field.",
        (
            DATASET,
            SITE,
            C("idx", "INTEGER", "0..n-1: site order of stored site arrays", False),
            REGION,
            C("subregion", "VARCHAR", "subregion (pIT, cIT, aIT) where known"),
            C("animal", "VARCHAR", "animal name where known"),
            C("electrode_array", "VARCHAR", "electrode array where known (MajajHong: P = V4, A/M = IT)"),
            C("reliability", "DOUBLE", "median over 10 random half-splits of the repetitions of the "
              "Spearman-Brown-corrected split-half r (NULL without trials)"),
            C("rf_x_deg", "DOUBLE", "mapped receptive-field centre, degrees right of fixation"),
            C("rf_y_deg", "DOUBLE", "mapped receptive-field centre, degrees above fixation (+y up)"),
            C("rf_size_deg", "DOUBLE", "mapped receptive-field diameter (1-SD contour), degrees"),
            C("true_rf_x_deg", "DOUBLE", "ground-truth centre (synthetic data only)"),
            C("true_rf_y_deg", "DOUBLE", "ground-truth centre (synthetic data only)"),
            C("true_rf_size_deg", "DOUBLE", "ground-truth diameter at 1 SD (synthetic data only)"),
            C("extra", "VARCHAR", "any other neuroid coordinates, as a JSON object"),
        ),
        key=("dataset", "site_id"),
        enforce_key=True,
    ),
    Table(
        "responses",
        "Trial-averaged response of every site to every stimulus.",
        (DATASET, SITE, STIM, C("response", "FLOAT", "mean over repetitions", False)),
        key=("dataset", "site_id", "stimulus_id"),
    ),
    Table(
        "trials",
        "Single-trial responses, where the data has them (reliability and split-half protocols).",
        (
            DATASET,
            SITE,
            STIM,
            C("repetition", "SMALLINT", "0-based repetition index", False),
            C("response", "FLOAT", "the trial's response (spike count for synthetic data)", False),
        ),
        key=("dataset", "site_id", "stimulus_id", "repetition"),
    ),
    Table(
        "site_rf_maps",
        "Receptive-field maps of sites from the squares-on-a-grid mapping experiment (Figure S2).",
        (
            DATASET,
            SITE,
            C("grid_responses", "FLOAT[]", "response minus blank to the 8x8 squares, row-major like an image: "
              "row 0 is the top of the visual field (highest y), column 0 the left", False),
            C("map", "FLOAT[]", "smoothed, normalised map on a map_size x map_size grid, row-major like an image: "
              "row 0 at y = +extent/2 (top), column 0 at x = -extent/2 (left)", False),
            C("map_size", "INTEGER", "side of `map` in samples", False),
            C("extent_deg", "DOUBLE", "the map spans [-extent/2, extent/2] degrees on both axes", False),
        ),
        key=("dataset", "site_id"),
    ),
    Table(
        "models",
        "One row per model (pretrained network, control or user ONNX file).",
        (
            MODEL,
            C("family", "VARCHAR", "architecture family (efficientnet-lite, resnet, ...)"),
            C("source", "VARCHAR", "where it came from: wheel, torchvision, timm, onnx file, control"),
            C("kind", "VARCHAR", "pretrained | untrained | control | onnx", False),
            C("reference_model", "VARCHAR", "for random-M / untrained-M: M"),
            C("input_size", "INTEGER", "square input side in pixels"),
            C("in_channels", "INTEGER", "1 (grayscale) or 3"),
            C("mean", "DOUBLE[]", "per-channel normalisation mean"),
            C("std", "DOUBLE[]", "per-channel normalisation std"),
            C("imagenet_top1", "DOUBLE", "ImageNet top-1 accuracy, percent, where known"),
            C("imagenet_top5", "DOUBLE", "ImageNet top-5 accuracy, percent, where known"),
            C("parameters", "BIGINT", "number of parameters"),
            C("total_units", "BIGINT", "units over all exposed layers"),
            C("n_layers", "INTEGER", "number of exposed layers"),
            C("layout", "VARCHAR", "nchw | nhwc: the model's layout (the input's, or `--layout`); the layout of "
              "layers whose layers.layout is NULL"),
            C("onnx_path", "VARCHAR", "content-addressed ONNX file under the data folder's models/"),
            C("sha256", "VARCHAR", "sha256 of the ONNX file"),
            C("created_at", "TIMESTAMP", "when it was added"),
        ),
        key=("model",),
        enforce_key=True,
        owner="models",
    ),
    Table(
        "layers",
        "Exposed layers of every model, in network order.",
        (
            MODEL,
            LAYER_IDX,
            C("layer", "VARCHAR", "module path (torch) or tensor name (ONNX)", False),
            C("op_type", "VARCHAR", "ONNX op producing it (Relu, Clip, Add, ...)"),
            C("depth", "DOUBLE", "normalised depth, linearly spaced 0.0 .. 1.0", False),
            C("channels", "INTEGER", "C", False),
            C("height", "INTEGER", "H (1 for 1-D outputs)", False),
            C("width", "INTEGER", "W (1 for 1-D outputs)", False),
            C("units", "BIGINT", "C*H*W", False),
            C("output_name", "VARCHAR", "ONNX graph output name of this layer"),
            C("layout", "VARCHAR", "nchw | nhwc: this layer's output layout (NULL: the model's, models.layout)"),
        ),
        key=("model", "layer_idx"),
        enforce_key=True,
        owner="models",
    ),
    Table(
        "match_runs",
        "Which (dataset, model) pairs were matched, with what settings and cost.",
        (
            DATASET,
            MODEL,
            C("top_k", "INTEGER", "K of matches / layer_matches", False),
            C("n_stimuli", "INTEGER", "stimuli used"),
            C("n_passes", "INTEGER", "unit passes needed by the memory budget"),
            C("inference_s", "DOUBLE", "seconds spent in onnxruntime"),
            C("match_s", "DOUBLE", "seconds for the whole matching step"),
            C("gather_s", "DOUBLE", "seconds for the gather pass"),
            C("created_at", "TIMESTAMP", "when it finished"),
        ),
        key=("dataset", "model"),
        enforce_key=True,
        owner="matching",
    ),
    Table(
        "matches",
        "Top-K units over the whole model for every site (rank 1 = best).",
        (DATASET, MODEL, SITE, C("rank", "INTEGER", "1 = best", False), LAYER_IDX, CHANNEL, UY, UX, R),
        key=("dataset", "model", "site_id", "rank"),
        owner="matching",
    ),
    Table(
        "layer_matches",
        "Top-K units within every layer for every site (rank 1 = best in the layer).",
        (DATASET, MODEL, SITE, LAYER_IDX, C("rank", "INTEGER", "1 = best in the layer", False), CHANNEL, UY, UX, R),
        key=("dataset", "model", "site_id", "layer_idx", "rank"),
        owner="matching",
    ),
    Table(
        "split_matches",
        "Each site's best unit over the whole model chosen on a training set only: folds 0..train_folds-1 "
        "(stimulus_folds), searched in the matching run itself. The held-out scores score these units on the "
        "other folds.",
        (DATASET, MODEL, SITE,
         C("train_folds", "INTEGER", "the training set: folds 0 .. train_folds-1 (5 = split-half, 9 = 90/10)", False),
         C("rank", "INTEGER", "1 = best on the training set", False), LAYER_IDX, CHANNEL, UY, UX,
         C("r", "FLOAT", "Pearson r over the training set's stimuli", False)),
        key=("dataset", "model", "site_id", "train_folds", "rank"),
        owner="matching",
    ),
    Table(
        "featuremap_matches",
        "The best unit within every feature map (channel) of every layer for every site.",
        (DATASET, MODEL, SITE, LAYER_IDX, CHANNEL, UY, UX, R),
        key=("dataset", "model", "site_id", "layer_idx", "channel"),
        owner="matching",
    ),
    Table(
        "unit_activations",
        "Activations over all stimuli (idx order) of gathered units: every top-K unit, every unit chosen on a "
        "training set (split_matches), 10 random units per site from its best unit's layer, plus units analyses "
        "asked for.",
        (
            DATASET,
            MODEL,
            LAYER_IDX,
            CHANNEL,
            UY,
            UX,
            C("reason", "VARCHAR", "topk | heldout (chosen on a training set: split_matches) | random | requested"),
            C("values", "FLOAT[]", "activation for every stimulus, in stimuli.idx order", False),
        ),
        key=("dataset", "model", "layer_idx", "channel", "y", "x"),
        owner="matching",
    ),
    Table(
        "scores",
        "Population statistics per dataset, model and region.",
        (DATASET, MODEL, REGION, METRIC, VALUE, CI_LOW, CI_HIGH, CI_SCHEME),
        key=("dataset", "model", "region", "metric"),
        owner="statistics",
    ),
    Table(
        "layer_scores",
        "Population statistics restricted to one layer.",
        (DATASET, MODEL, REGION, LAYER_IDX, METRIC, VALUE, CI_LOW, CI_HIGH, CI_SCHEME),
        key=("dataset", "model", "region", "layer_idx", "metric"),
        owner="statistics",
    ),
    Table(
        "site_scores",
        "Per-site statistics (held-out r, stability, p, q, ceiled r, one-to-one r, depth).",
        (DATASET, MODEL, SITE, METRIC, VALUE),
        key=("dataset", "model", "site_id", "metric"),
        owner="statistics",
    ),
    Table(
        "selection_curve",
        "Held-out neural correlation as the selection set grows (Figure S1).",
        (DATASET, MODEL, REGION, C("fraction", "DOUBLE", "fraction of stimuli used to select", False),
         VALUE, CI_LOW, CI_HIGH, CI_SCHEME),
        key=("dataset", "model", "region", "fraction"),
        owner="statistics",
    ),
    Table(
        "model_comparisons",
        "Paired comparisons between two models over the same sites.",
        (
            DATASET,
            REGION,
            C("model_a", "VARCHAR", "first model", False),
            C("model_b", "VARCHAR", "second model", False),
            METRIC,
            C("difference", "DOUBLE", "median over sites of (a - b)"),
            C("p_value", "DOUBLE", "two-sided p-value of the paired test"),
            C("ci_low", "DOUBLE", "lower end of the 95% interval of the difference"),
            C("ci_high", "DOUBLE", "upper end of the 95% interval of the difference"),
            C("p_holm", "DOUBLE", "p_value adjusted (Holm) over every pair of models of the region and metric"),
            C("test", "VARCHAR", "the paired test, e.g. 'two-way cluster bootstrap' or 'Wilcoxon signed-rank'"),
            CI_SCHEME,
        ),
        key=("dataset", "region", "model_a", "model_b", "metric"),
        owner="statistics",
    ),
    Table(
        "runnerups",
        "Runner-up units (Figures 7, S10): per site, the r of its top units and the gap to the best, over the "
        "whole model and within the region's best ('V4-like' / 'IT-like') layer.",
        (
            DATASET,
            MODEL,
            SITE,
            C("scope", "VARCHAR", "model (top-K over all layers) | layer (top-K within layer_idx)", False),
            C("layer_idx", "INTEGER", "the layer for scope 'layer' (NULL for 'model')"),
            C("best_r", "DOUBLE", "rank-1 r"),
            C("gap", "DOUBLE", "rank-1 r minus rank-2 r"),
            C("median_r", "DOUBLE", "median r over the top-K"),
            C("n_within_0_05", "INTEGER", "units within 0.05 of the best r"),
        ),
        key=("dataset", "model", "site_id", "scope"),
        owner="analyses",
    ),
    Table(
        "featuremap_counts",
        "Figures 8, S11: how many sites' best unit (top='1') or top-K units (top='k') lie in each feature map "
        "and at each x and y position of a layer.",
        (
            DATASET,
            MODEL,
            REGION,
            LAYER_IDX,
            C("top", "VARCHAR", "'1' (best unit per site) | 'k' (the site's top-K within the layer)", False),
            C("axis", "VARCHAR", "channel | x | y", False),
            C("index", "INTEGER", "channel, x or y", False),
            C("count", "INTEGER", "number of units (= sites for top '1')", False),
        ),
        key=("dataset", "model", "region", "layer_idx", "top", "axis", "index"),
        owner="analyses",
    ),
    Table(
        "rotations",
        "Figure 9: neural correlation of a layer in its natural basis and under random rotations (Haar on SO(N)) "
        "of the feature basis, and the neural population rotated against itself.",
        (
            DATASET,
            MODEL,
            REGION,
            LAYER_IDX,
            C("basis", "VARCHAR", "natural | rotated | neural_self", False),
            C("run", "INTEGER", "0 for natural; 0..n-1 for rotations", False),
            C("value", "DOUBLE", "median over the region's sites of the best r in that basis", False),
            C("seed", "BIGINT", "seed of the rotation"),
        ),
        key=("dataset", "model", "region", "layer_idx", "basis", "run"),
        owner="analyses",
    ),
    Table(
        "decoding",
        "Figure 5, S5, S6: linear-SVM category decoding; one row per run.",
        (
            DATASET,
            MODEL,
            REGION,
            C("train_population", "VARCHAR", "neural | matched | random | pixels", False),
            C("test_population", "VARCHAR", "neural | matched | random | pixels", False),
            C("variant", "VARCHAR", "in_sample (units chosen on all stimuli) | heldout (chosen on the other half)",
              False),
            C("run", "INTEGER", "run index", False),
            C("accuracy", "DOUBLE", "test accuracy", False),
            C("chance", "DOUBLE", "1 / number of categories", False),
            C("c", "DOUBLE", "the regularisation chosen for this run"),
        ),
        key=("dataset", "model", "region", "train_population", "test_population", "variant", "run"),
        owner="analyses",
    ),
    Table(
        "confusions",
        "Figures S5, S6: confusion matrices per decoding condition, averaged over runs (rows sum to 1).",
        (
            DATASET,
            MODEL,
            REGION,
            C("train_population", "VARCHAR", "as in decoding", False),
            C("test_population", "VARCHAR", "as in decoding", False),
            C("variant", "VARCHAR", "as in decoding", False),
            C("true_category", "VARCHAR", "category of the stimulus", False),
            C("predicted_category", "VARCHAR", "category the decoder chose", False),
            C("fraction", "DOUBLE", "fraction of the true category's test stimuli given this prediction", False),
        ),
        key=("dataset", "model", "region", "train_population", "test_population", "variant", "true_category",
             "predicted_category"),
        owner="analyses",
    ),
    Table(
        "receptive_fields",
        "Figure S2: receptive fields of model units (each site's best unit, and units asked for with "
        "`python -m precompute rf`), by the gradient method and by in-silico mapping with the physiological "
        "protocol (1-degree squares on an 8x8 grid; the same estimator as the sites).",
        (
            DATASET,
            MODEL,
            LAYER_IDX,
            CHANNEL,
            UY,
            UX,
            C("method", "VARCHAR", "gradient | mapping", False),
            C("site_id", "VARCHAR", "the site this unit is the best match of (NULL for a requested unit)"),
            C("x_deg", "DOUBLE", "centre, degrees right of fixation"),
            C("y_deg", "DOUBLE", "centre, degrees above fixation (+y up)"),
            C("size_deg", "DOUBLE", "diameter of the 1-SD contour, degrees"),
            C("map", "FLOAT[]", "normalised map, map_size x map_size, row 0 at the top (as site_rf_maps)"),
            C("map_size", "INTEGER", "side of `map`"),
            C("extent_deg", "DOUBLE", "the map spans [-extent/2, extent/2] degrees"),
            C("distance_deg", "DOUBLE", "distance between this centre and the site's mapped centre"),
        ),
        key=("dataset", "model", "layer_idx", "channel", "y", "x", "method"),
        owner="analyses",
    ),
)

TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

#: Tables whose rows belong to one model, through these columns.
MODEL_COLUMNS = ("model", "model_a", "model_b", "reference_model")


def create_all(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table that does not exist yet and add the nullable columns an older file lacks (idempotent).

    A column added to the schema later goes at the end of its table and is nullable (NULL meaning "as
    before"), so that a database written before it opens and reads the same after `ALTER TABLE ... ADD COLUMN`.
    """
    for table in TABLES:
        con.execute(table.ddl())
    have: dict[str, set[str]] = {}
    for name, column in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_catalog = current_database()").fetchall():
        have.setdefault(name, set()).add(column)
    for table in TABLES:
        for c in table.columns:
            if c.name in have.get(table.name, set()):
                continue
            if not c.nullable:
                raise RuntimeError(f"table {table.name} lacks the NOT NULL column {c.name}: an older database "
                                   f"cannot be upgraded in place; rebuild it")
            con.execute(f'ALTER TABLE "{table.name}" ADD COLUMN "{c.name}" {c.type}')


def tables_with_column(column: str) -> list[str]:
    return [t.name for t in TABLES if column in t.column_names]


def remove_dataset_rows(con: duckdb.DuckDBPyConnection, dataset: str) -> None:
    """Delete a dataset and every result derived from it (inside the caller's transaction)."""
    for name in tables_with_column("dataset"):
        con.execute(f'DELETE FROM "{name}" WHERE dataset = ?', [dataset])
    # results of other datasets that read this one are named after it: metric `cross_dataset@<dataset>`
    for name in tables_with_column("metric"):
        con.execute(f'DELETE FROM "{name}" WHERE ends_with(metric, ?)', ["@" + dataset])


def remove_model_rows(con: duckdb.DuckDBPyConnection, model: str) -> None:
    """Delete a model and every result derived from it (inside the caller's transaction)."""
    for table in TABLES:
        cols = [c for c in ("model", "model_a", "model_b") if c in table.column_names]
        if cols:
            where = " OR ".join(f'"{c}" = ?' for c in cols)
            con.execute(f'DELETE FROM "{table.name}" WHERE {where}', [model] * len(cols))


def describe_markdown() -> str:
    """The schema as Markdown (docs/schema.md is generated from this)."""
    lines = [f"# Database schema (version {SCHEMA_VERSION})", "",
             "Generated from `backend/schema.py`; do not edit by hand.", ""]
    for t in TABLES:
        lines += [f"## `{t.name}`", "", t.doc, "", "| column | type | meaning |", "|---|---|---|"]
        for c in t.columns:
            lines.append(f"| `{c.name}` | {c.type} | {c.doc} |")
        if t.key:
            lines += ["", "Key: " + ", ".join(f"`{k}`" for k in t.key)]
        lines.append("")
    return "\n".join(lines)
