"""`synthetic-hvm`: the embedded default dataset, a deterministic synthetic stand-in for the HvM experiment.

Stimuli are the 2,560 variation-6 rows of the real HvM metadata (hvm_data/hvm_stimuli.csv: real image
ids, categories, objects and poses), drawn procedurally by `render.py`; the 88 V4 and 168 IT sites are
simulated by the hidden encoding model of `encoding.py` (47 Poisson repetitions per image); a simulated
receptive-field mapping experiment (1-degree white squares on an 8 x 8 grid, as in the seed paper's
Figure S2) is run through the same model and analysed with the shared estimator of
`precompute/datasets/rf_mapping.py`. Everything is a deterministic function of the seed (and n_stimuli).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.core.errors import UserError
from precompute.datasets import encoding, render
from precompute.datasets.reliability import split_half_reliability
from precompute.datasets.rf_mapping import estimate_rf, square_grid_stimuli
from precompute.datasets.tables import DatasetTables

log = logging.getLogger(__name__)

HVM_CSV = Path(__file__).resolve().parent / "hvm_data" / "hvm_stimuli.csv"
VARIATION = 6
N_REPETITIONS = 47
QUICK_STIMULI = 640
#: HvM's variation-6 stimuli: the whole synthetic set
N_HVM_STIMULI = 2560
GENERATOR_VERSION = 1
TITLE = "Synthetic HvM (variation 6)"

_RENAME = {
    "image_id": "stimulus_id",
    "category_name": "category",
    "object_name": "object",
    "image_file_name": "filename",
}
_STIMULUS_COLUMNS = (
    "stimulus_id",
    "idx",
    "category",
    "object",
    "variation",
    "ty",
    "tz",
    "s",
    "rxy",
    "rxz",
    "ryz",
    "background_id",
    "filename",
    "width",
    "height",
    "extra",
)


# --------------------------------------------------------------------------- stimuli
def load_hvm_metadata(variation: int = VARIATION) -> pd.DataFrame:
    """The HvM metadata rows of one variation level, in CSV order, with the original columns."""
    meta = pd.read_csv(HVM_CSV, dtype={"image_id": str, "background_id": str})
    return meta[meta["variation"] == variation].reset_index(drop=True)


def select_balanced(meta: pd.DataFrame, n: int) -> pd.DataFrame:
    """A deterministic subset of n rows balanced over categories and objects (CSV order kept).

    Rows are ranked within their object by image id; taking ranks round-robin over objects (category-major)
    means any n gives every object floor(n/64) or one more row, and every category as even a share as
    possible. The subset does not depend on the seed, so quick builds of different seeds share stimuli.
    """
    if n >= len(meta):
        return meta
    ranked = meta.assign(_rank=meta.groupby("object_name")["image_id"].rank(method="first"))
    order = ranked.sort_values(["_rank", "object_name"], kind="stable")
    # spread the last partial round over categories rather than filling categories in name order
    order = order.assign(_cat_turn=order.groupby(["_rank", "category_name"]).cumcount())
    order = order.sort_values(["_rank", "_cat_turn", "category_name"], kind="stable")
    chosen = order.head(n).index.sort_values()
    return meta.loc[chosen].reset_index(drop=True)


def stimulus_table(meta: pd.DataFrame) -> pd.DataFrame:
    """`stimuli` rows (without `dataset`) from HvM metadata rows: real ids, renamed columns, the rest in `extra`."""
    df = meta.rename(columns=_RENAME).reset_index(drop=True)
    df["idx"] = np.arange(len(df), dtype=np.int64)
    df["width"] = render.IMAGE_SIZE
    df["height"] = render.IMAGE_SIZE
    extra_cols = [c for c in df.columns if c not in _STIMULUS_COLUMNS]
    df["extra"] = [
        json.dumps({c: _plain(r[c]) for c in extra_cols}, sort_keys=True) for r in df[extra_cols].to_dict("records")
    ]
    df["variation"] = df["variation"].astype(np.int64)
    return df[list(_STIMULUS_COLUMNS)]


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def object_index(stimuli: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Index 0..63 of every stimulus's object (objects sorted by (category, object)) and the object list."""
    meta = load_hvm_metadata()
    full = [o for _, o in sorted(set(zip(meta["category_name"], meta["object_name"], strict=True)))]
    lookup = {o: i for i, o in enumerate(full)}
    missing = sorted(set(stimuli["object"]) - set(lookup))
    if missing:
        raise ValueError(f"objects not in the HvM set: {missing}")
    return np.array([lookup[o] for o in stimuli["object"]], dtype=np.int64), full


def render_stimuli(
    seed: int, stimuli: pd.DataFrame, on_chunk=None, chunk: int = 64, progress: bool | None = False
) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """Draw every stimulus: (8-bit images (n, 256, 256), object masks pooled to 16 x 16, PNG bytes in idx order).

    Drawing and PNG encoding run in worker threads (PIL, zlib and the FFTs release the GIL);
    `on_chunk(start, stop, images, masks)` is called in order as each chunk of `chunk` stimuli is ready,
    so the caller can encode chunk k while chunk k+1 is drawn. Results never depend on thread timing.
    """
    rows = stimuli.to_dict("records")
    n = len(rows)
    images = np.empty((n, render.IMAGE_SIZE, render.IMAGE_SIZE), dtype=np.uint8)
    masks = np.empty((n, encoding.IT_SIZE, encoding.IT_SIZE), dtype=np.float32)
    pngs: list[bytes] = [b""] * n
    f = render.IMAGE_SIZE // encoding.IT_SIZE

    def one(i: int) -> None:
        img, alpha = render.render_stimulus(seed, rows[i])
        images[i] = img
        masks[i] = alpha.reshape(encoding.IT_SIZE, f, encoding.IT_SIZE, f).mean(axis=(1, 3))
        pngs[i] = render.encode_png(img)

    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool, _bar(n, "synthetic-hvm", progress) as bar:
        futures = [pool.submit(one, i) for i in range(n)]
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            for fut in futures[start:stop]:
                fut.result()
            if on_chunk is not None:
                on_chunk(start, stop, images, masks)
            bar.update(stop - start)
    return images, masks, pngs


def _bar(total: int, desc: str, enabled: bool | None):
    """A tqdm bar (rate and ETA); enabled=None shows it only on a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=None if enabled is None else not enabled, leave=False)


# --------------------------------------------------------------------------- the whole dataset
def generate(seed: int = 0, n_stimuli: int | None = None, *, progress: bool | None = None) -> DatasetTables:
    """Generate `synthetic-hvm` (all 2,560 variation-6 stimuli, or a balanced subset of n_stimuli).

    Same (seed, n_stimuli) -> identical tables, arrays and PNG bytes. About 20 s and 1 GB for the full
    set on 2 cores. `progress`: a progress bar (None: only when stderr is a terminal).
    """
    meta = load_hvm_metadata()
    if n_stimuli is not None:
        if not 1 <= int(n_stimuli) <= len(meta):
            raise UserError(f"n_stimuli must be between 1 and {len(meta)} (the HvM variation-6 set), got {n_stimuli}")
        meta = select_balanced(meta, int(n_stimuli))
    t0 = time.perf_counter()
    stimuli = stimulus_table(meta)
    obj_idx, _ = object_index(stimuli)
    model = encoding.GroundTruthModel(encoding.make_population(render.rng_for(seed, "sites")))
    parts: list[encoding.PooledDrive] = []

    def encode_chunk(start: int, stop: int, images: np.ndarray, masks: np.ndarray) -> None:
        if start == 0:
            model.calibrate_features(images[start:stop])
        parts.append(model.pool_batch(images[start:stop], masks[start:stop], obj_idx[start:stop]))

    _, _, pngs = render_stimuli(seed, stimuli, on_chunk=encode_chunk, chunk=model.chunk, progress=progress)
    t_render = time.perf_counter() - t0

    model.fit_pooled(encoding.concat_pooled(parts))
    pop = model.population
    rates = model.rates_from_pooled(model.pooled_)
    trials = encoding.spike_counts(rates, N_REPETITIONS, render.rng_for(seed, "trials"))
    responses = trials.mean(axis=2, dtype=np.float64).astype(np.float32)
    reliability = split_half_reliability(trials, n_splits=10, seed=seed)
    t_sites = time.perf_counter() - t0 - t_render

    grid, estimates = map_receptive_fields(model, render.rng_for(seed, "rf-mapping"))
    t_rf = time.perf_counter() - t0 - t_render - t_sites

    sites = _site_table(pop, reliability, estimates)
    rf_maps = pd.DataFrame(
        {
            "site_id": pop.site_id,
            "grid_responses": [g.astype(np.float32).tolist() for g in grid],
            "map": [e.map.ravel().tolist() for e in estimates],
            "map_size": [e.map_size for e in estimates],
            "extent_deg": [e.extent_deg for e in estimates],
        }
    )
    log.info(
        "synthetic-hvm (seed %d): %d stimuli drawn and encoded in %.1f s, %d sites' trials and "
        "reliability in %.1f s, RF mapping in %.1f s",
        seed,
        len(stimuli),
        t_render,
        len(sites),
        t_sites,
        t_rf,
    )
    return DatasetTables(
        info=_info(seed, len(stimuli)),
        stimuli=stimuli,
        images=pngs,
        sites=sites,
        responses=responses,
        trials=trials,
        rf_maps=rf_maps,
        extra={"generator": "precompute.datasets.synth", "generator_version": GENERATOR_VERSION},
    )


def map_receptive_fields(model: encoding.GroundTruthModel, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """The simulated Figure S2 experiment: 1-degree white squares at the 64 positions of the 8 x 8 grid and
    a blank gray image through the same model, 47 Poisson repetitions each; response = mean count minus
    the blank's. Returns (grid responses (sites, 64), row-major with row 0 at the top; RFEstimate per site)."""
    squares, blank = square_grid_stimuli(render.IMAGE_SIZE)
    images = np.round(np.concatenate([squares, blank[None]]) * 255).astype(np.uint8)
    counts = encoding.spike_counts(model.rates(images), N_REPETITIONS, rng)
    mean = counts.mean(axis=2, dtype=np.float64)
    grid = mean[:, :-1] - mean[:, -1:]
    return grid, [estimate_rf(g.reshape(8, 8)) for g in grid]


def _site_table(pop: encoding.SitePopulation, reliability: np.ndarray, estimates: list) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site_id": pop.site_id,
            "idx": np.arange(len(pop.site_id), dtype=np.int64),
            "region": pop.region.tolist(),
            "subregion": pop.subregion,
            "animal": encoding.ANIMAL,
            "electrode_array": pop.array,
            "reliability": reliability.astype(np.float64),
            "rf_x_deg": [e.x_deg for e in estimates],
            "rf_y_deg": [e.y_deg for e in estimates],
            "rf_size_deg": [e.size_deg for e in estimates],
            "true_rf_x_deg": pop.rf_x,
            "true_rf_y_deg": pop.rf_y,
            "true_rf_size_deg": pop.true_rf_size_deg,
            "extra": [
                json.dumps({"hemisphere": encoding.HEMISPHERE, "row": int(r), "col": int(c)}, sort_keys=True)
                for r, c in zip(pop.row, pop.col, strict=True)
            ],
        }
    )


def _input_hash(seed: int, n_stimuli: int) -> str:
    h = hashlib.sha256()
    h.update(HVM_CSV.read_bytes())
    h.update(f"synth:v{GENERATOR_VERSION}:seed={seed}:n={n_stimuli}".encode())
    return h.hexdigest()


def _info(seed: int, n_stimuli: int) -> dict:
    subset = "all 2,560" if n_stimuli >= 2560 else f"a category- and object-balanced subset of {n_stimuli} of the 2,560"
    return {
        "title": TITLE,
        "description": (
            "SYNTHETIC data, not recordings. Stimuli: " + subset + " variation-6 rows of the HvM stimulus set "
            "(Majaj, Hong et al. 2015; real image ids, categories, objects, positions, scales and rotations), "
            "drawn procedurally as 256 x 256 grayscale images spanning 8 degrees (8 categories x 8 objects on "
            "1/f-noise backgrounds). Responses: 88 'V4' and 168 'IT' sites simulated by a hidden ground-truth "
            "encoding model that is not any network (V4: oriented energy and curvature features pooled in "
            "Gaussian receptive fields with divisive normalisation; IT: larger fields, shape conjunctions and "
            "category-tuned components), 47 Poisson repetitions per image in a 70-170 ms window, trial-averaged "
            f"spike counts. Receptive fields from a simulated 1-degree-squares mapping experiment. Seed {seed}. "
            "It mimics the seed paper's HvM V4/IT data so every analysis can run offline; conclusions about "
            "brains cannot be drawn from it."
        ),
        "source": "synth",
        "synthetic": True,
        "visual_degrees": render.VISUAL_DEGREES,
        "n_repetitions": N_REPETITIONS,
        "seed": int(seed),
        "input_hash": _input_hash(seed, n_stimuli),
    }
