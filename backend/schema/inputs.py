"""Tables of the inputs: the build's facts, datasets (stimuli, sites, responses, trials, mapped receptive
fields) and models (their layers). Written by the skeleton and models steps."""

from __future__ import annotations

from backend.schema.types import DATASET, LAYER_IDX, MODEL, REGION, SITE, STIM, C, Table

TABLES: tuple[Table, ...] = (
    Table(
        "build_info",
        "Key/value facts about this build: what made every result in the file.",
        (
            C(
                "key",
                "VARCHAR",
                "schema_version, build_id, published_at, steps_done (JSON list), "
                "step:<name> (JSON: finished_at, seconds), packages (JSON), seeds (JSON), "
                "input_hashes (JSON: file -> sha256), analysis_inputs (JSON: step -> the inputs it ran on), "
                "cluster_tasks (JSON), commit_id (the last committed step: a served file with another one is "
                "published again before the next write)",
                False,
            ),
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
            C(
                "reliability",
                "DOUBLE",
                "median over 10 random half-splits of the repetitions of the "
                "Spearman-Brown-corrected split-half r (NULL without trials)",
            ),
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
            C(
                "grid_responses",
                "FLOAT[]",
                "response minus blank to the 8x8 squares, row-major like an image: "
                "row 0 is the top of the visual field (highest y), column 0 the left",
                False,
            ),
            C(
                "map",
                "FLOAT[]",
                "smoothed, normalised map on a map_size x map_size grid, row-major like an image: "
                "row 0 at y = +extent/2 (top), column 0 at x = -extent/2 (left)",
                False,
            ),
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
            C(
                "layout",
                "VARCHAR",
                "nchw | nhwc: the model's layout (the input's, or `--layout`); the layout of "
                "layers whose layers.layout is NULL",
            ),
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
)
