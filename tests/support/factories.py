"""Small, deterministic test data built with the real writer (shared by unit, callback and browser tests)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
from PIL import Image

from precompute.datasets.tables import DatasetTables

CATEGORIES = ("Animals", "Cars", "Faces", "Planes")


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def mini_tables(n_stimuli: int = 24, n_v4: int = 4, n_it: int = 5, n_reps: int = 6, seed: int = 0) -> DatasetTables:
    """A tiny dataset: images of random squares, 2 regions, Poisson trials, RF maps for every site."""
    rng = np.random.default_rng(seed)
    objects = [f"{c.lower()}{k}" for c in CATEGORIES for k in range(2)]
    stim_rows = []
    images = []
    for i in range(n_stimuli):
        obj = objects[i % len(objects)]
        stim_rows.append(
            {
                "stimulus_id": f"stim{i:03d}",
                "idx": i,
                "category": CATEGORIES[(i % len(objects)) // 2],
                "object": obj,
                "variation": 6,
                "ty": float(rng.uniform(-0.5, 0.5)),
                "tz": float(rng.uniform(-1, 1)),
                "s": 1.0,
                "rxy": 0.0,
                "rxz": 0.0,
                "ryz": 0.0,
                "background_id": f"bg{i % 3}",
                "filename": f"stim{i:03d}.png",
                "width": 32,
                "height": 32,
                "extra": json.dumps({"k": i}),
            }
        )
        images.append(png_bytes((rng.random((32, 32)) * 255).astype(np.uint8)))
    n_sites = n_v4 + n_it
    site_rows = []
    for j in range(n_sites):
        region = "V4" if j < n_v4 else "IT"
        site_rows.append(
            {
                "site_id": f"{region}-{j:03d}",
                "idx": j,
                "region": region,
                "subregion": None if region == "V4" else "cIT",
                "animal": "Test",
                "electrode_array": "P" if region == "V4" else "M",
                "rf_x_deg": float(rng.uniform(-2, 2)),
                "rf_y_deg": float(rng.uniform(-2, 2)),
                "rf_size_deg": 1.0 if region == "V4" else 3.0,
            }
        )
    rates = rng.gamma(2.0, 2.0, size=(n_sites, n_stimuli))
    trials = rng.poisson(rates[:, :, None], size=(n_sites, n_stimuli, n_reps)).astype(np.float32)
    trials[0, 0, -1] = np.nan  # one stimulus with a missing repetition
    responses = np.nanmean(trials, axis=2).astype(np.float32)
    sites = pd.DataFrame(site_rows)
    from precompute.datasets.reliability import split_half_reliability

    sites["reliability"] = split_half_reliability(trials)
    rf_maps = pd.DataFrame(
        {
            "site_id": sites["site_id"],
            "grid_responses": [rng.random(64).astype(np.float32).tolist() for _ in range(n_sites)],
            "map": [rng.random(16 * 16).astype(np.float32).tolist() for _ in range(n_sites)],
            "map_size": 16,
            "extent_deg": 8.0,
        }
    )
    info = {
        "title": "Mini test set",
        "description": "tiny synthetic data for tests",
        "source": "synth",
        "synthetic": True,
        "visual_degrees": 8.0,
        "seed": seed,
    }
    return DatasetTables(
        info=info,
        stimuli=pd.DataFrame(stim_rows),
        images=images,
        sites=sites,
        responses=responses,
        trials=trials,
        rf_maps=rf_maps,
    )


TOY_LAYERS = (("conv1", 4, 3, 3), ("block1", 6, 2, 2), ("fc", 10, 1, 1))


def toy_activations(n_stimuli: int, seed: int = 0) -> list[np.ndarray]:
    """Activations (stimuli x C x H x W) of a toy 3-layer model, with one dead (constant) unit per layer."""
    rng = np.random.default_rng(100 + seed)
    out = []
    for _, c, h, w in TOY_LAYERS:
        a = rng.normal(size=(n_stimuli, c, h, w)).astype(np.float32)
        a[:, 0, 0, 0] = 1.5  # constant: must never be matched
        out.append(a)
    return out


def brute_force_r(responses: np.ndarray, activations: list[np.ndarray]) -> np.ndarray:
    """float64 Pearson r of every site (rows) with every unit (columns, layers concatenated, flat order)."""
    units = np.concatenate([a.reshape(a.shape[0], -1) for a in activations], axis=1).astype(np.float64)
    z = responses.astype(np.float64)
    z = (z - z.mean(1, keepdims=True)) / z.std(1, keepdims=True)
    u = units - units.mean(0)
    sd = u.std(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (z @ u) / (len(units) * sd)
    r[:, sd == 0] = np.nan
    return r


# long: every results table of the toy build, one block per table, in schema order
def write_toy_results(
    store,
    dataset: str = "mini",
    model: str = "toy",
    *,
    top_k: int = 10,
    layer_k: int = 5,
    seed: int = 0,
    tables: DatasetTables | None = None,
) -> np.ndarray:
    """Write a toy model and brute-force match tables for `dataset` (what the matching engine writes).

    Returns the float64 r matrix (sites x units). Used to test the app and the statistics without
    running a network.
    """
    tables = tables or mini_tables()
    n_stim = len(tables.stimuli)
    acts = toy_activations(n_stim, seed)
    r = brute_force_r(tables.responses, acts)
    sizes = [c * h * w for _, c, h, w in TOY_LAYERS]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    site_ids = tables.sites.sort_values("idx")["site_id"].tolist()

    def unit_of(flat: int) -> tuple[int, int, int, int]:
        layer = int(np.searchsorted(offsets, flat, side="right") - 1)
        _, c, h, w = TOY_LAYERS[layer]
        rem = flat - offsets[layer]
        return layer, int(rem // (h * w)), int((rem // w) % h), int(rem % w)

    def ranked(row: np.ndarray, idx: np.ndarray) -> np.ndarray:
        vals = np.where(np.isnan(row[idx]), -np.inf, row[idx])
        order = np.lexsort((idx, -vals))  # highest r first, ties: lower flat index
        return idx[order][np.isfinite(vals[order])]

    with store.connect() as con:
        from precompute.datasets.folds import TRAIN_FOLDS, ensure_folds

        folds = ensure_folds(con, dataset)
    responses = tables.responses  # rows and columns in idx order, as brute_force_r above assumes
    split = []
    for t in TRAIN_FOLDS:  # each site's best unit on folds 0 .. t-1 (what the matching run's checkpoints find)
        train = folds < t
        r_t = brute_force_r(responses[:, train], [a[train] for a in acts])
        for s, site in enumerate(site_ids):
            best = ranked(r_t[s], np.arange(r_t.shape[1]))
            if len(best):
                li, c, y, x = unit_of(int(best[0]))
                split.append((dataset, model, site, t, 1, li, c, y, x, float(r_t[s, best[0]])))
    matches, layer_matches, fmaps = [], [], []
    for s, site in enumerate(site_ids):
        for rank, flat in enumerate(ranked(r[s], np.arange(r.shape[1]))[:top_k], 1):
            li, c, y, x = unit_of(int(flat))
            matches.append((dataset, model, site, rank, li, c, y, x, float(r[s, flat])))
        for li, (_, c_n, h, w) in enumerate(TOY_LAYERS):
            idx = np.arange(offsets[li], offsets[li + 1])
            for rank, flat in enumerate(ranked(r[s], idx)[:layer_k], 1):
                _, c, y, x = unit_of(int(flat))
                layer_matches.append((dataset, model, site, li, rank, c, y, x, float(r[s, flat])))
            for c in range(c_n):
                fidx = np.arange(offsets[li] + c * h * w, offsets[li] + (c + 1) * h * w)
                best = ranked(r[s], fidx)
                if len(best):
                    _, _, y, x = unit_of(int(best[0]))
                    fmaps.append((dataset, model, site, li, c, y, x, float(r[s, best[0]])))
    gathered = sorted({(m[4], m[5], m[6], m[7]) for m in matches})
    held = sorted({(m[5], m[6], m[7], m[8]) for m in split} - set(gathered))
    activ = [
        (dataset, model, li, c, y, x, reason, acts[li][:, c, y, x].astype(float).tolist())
        for units, reason in ((gathered, "topk"), (held, "heldout"))
        for li, c, y, x in units
    ]
    with store.step(f"match:{dataset}:{model}") as con:
        con.execute("DELETE FROM models WHERE model = ?", [model])
        con.execute(
            "INSERT INTO models (model, family, source, kind, input_size, in_channels, parameters, total_units, "
            "n_layers, layout, imagenet_top1) VALUES (?, 'toy', 'test', 'pretrained', 32, 1, 1000, ?, ?, 'nchw', 50.0)",
            [model, int(offsets[-1]), len(TOY_LAYERS)],
        )
        for li, (name, c, h, w) in enumerate(TOY_LAYERS):
            con.execute(
                "INSERT INTO layers VALUES (?, ?, ?, 'Relu', ?, ?, ?, ?, ?, ?, NULL)",
                [model, li, name, li / (len(TOY_LAYERS) - 1), c, h, w, c * h * w, name],
            )
        con.executemany("INSERT INTO matches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", matches)
        con.executemany("INSERT INTO layer_matches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", layer_matches)
        con.executemany("INSERT INTO featuremap_matches VALUES (?, ?, ?, ?, ?, ?, ?, ?)", fmaps)
        con.executemany("INSERT INTO split_matches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", split)
        con.executemany("INSERT INTO unit_activations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", activ)
        con.execute(
            "INSERT INTO match_runs (dataset, model, top_k, n_stimuli, n_passes) VALUES (?, ?, ?, ?, 1)",
            [dataset, model, top_k, n_stim],
        )
    return r


def write_toy_scores(store, dataset: str = "mini", models: tuple[str, ...] = ("toy", "toy2")) -> None:
    """Scores for the Overview page: in-sample neural correlation per region from the stored matches
    (median of rank-1 r, a percentile bootstrap over sites), the best single layer's score, a null median."""
    rng = np.random.default_rng(0)
    rows, comparisons = [], []
    with store.step(f"analyze:toy_scores:{dataset}") as con:
        best = con.execute(
            "SELECT m.model, s.region, m.site_id, m.r FROM matches m JOIN sites s USING (dataset, site_id) "
            "WHERE m.dataset = ? AND m.rank = 1",
            [dataset],
        ).df()
        layer = con.execute(
            "SELECT m.model, s.region, m.layer_idx, median(m.r) AS med FROM layer_matches m "
            "JOIN sites s USING (dataset, site_id) WHERE m.dataset = ? AND m.rank = 1 GROUP BY ALL",
            [dataset],
        ).df()
        for (model, region), g in best.groupby(["model", "region"]):
            if model not in models:
                continue
            r = g["r"].to_numpy()
            boots = np.median(rng.choice(r, size=(200, len(r))), axis=1)
            rows.append(
                (
                    dataset,
                    model,
                    region,
                    "neural_correlation",
                    float(np.median(r)),
                    float(np.percentile(boots, 2.5)),
                    float(np.percentile(boots, 97.5)),
                )
            )
            best_layer = layer[(layer["model"] == model) & (layer["region"] == region)]["med"].max()
            rows.append((dataset, model, region, "best_layer_score", float(best_layer), None, None))
            rows.append((dataset, model, region, "null_median", 0.1, None, None))
        con.executemany(
            "INSERT INTO scores (dataset, model, region, metric, value, ci_low, ci_high) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        for region in ("V4", "IT"):
            comparisons.append((dataset, region, models[0], models[1], "neural_correlation", 0.01, 0.5))
        con.executemany(
            "INSERT INTO model_comparisons (dataset, region, model_a, model_b, metric, difference, "
            "p_value) VALUES (?, ?, ?, ?, ?, ?, ?)",
            comparisons,
        )
