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
        stim_rows.append({
            "stimulus_id": f"stim{i:03d}", "idx": i, "category": CATEGORIES[(i % len(objects)) // 2],
            "object": obj, "variation": 6, "ty": float(rng.uniform(-0.5, 0.5)), "tz": float(rng.uniform(-1, 1)),
            "s": 1.0, "rxy": 0.0, "rxz": 0.0, "ryz": 0.0, "background_id": f"bg{i % 3}",
            "filename": f"stim{i:03d}.png", "width": 32, "height": 32, "extra": json.dumps({"k": i}),
        })
        images.append(png_bytes((rng.random((32, 32)) * 255).astype(np.uint8)))
    n_sites = n_v4 + n_it
    site_rows = []
    for j in range(n_sites):
        region = "V4" if j < n_v4 else "IT"
        site_rows.append({
            "site_id": f"{region}-{j:03d}", "idx": j, "region": region, "subregion": None if region == "V4" else "cIT",
            "animal": "Test", "electrode_array": "P" if region == "V4" else "M",
            "rf_x_deg": float(rng.uniform(-2, 2)), "rf_y_deg": float(rng.uniform(-2, 2)),
            "rf_size_deg": 1.0 if region == "V4" else 3.0,
        })
    rates = rng.gamma(2.0, 2.0, size=(n_sites, n_stimuli))
    trials = rng.poisson(rates[:, :, None], size=(n_sites, n_stimuli, n_reps)).astype(np.float32)
    trials[0, 0, -1] = np.nan  # one stimulus with a missing repetition
    responses = np.nanmean(trials, axis=2).astype(np.float32)
    sites = pd.DataFrame(site_rows)
    from precompute.datasets.reliability import split_half_reliability

    sites["reliability"] = split_half_reliability(trials)
    rf_maps = pd.DataFrame({
        "site_id": sites["site_id"],
        "grid_responses": [rng.random(64).astype(np.float32).tolist() for _ in range(n_sites)],
        "map": [rng.random(16 * 16).astype(np.float32).tolist() for _ in range(n_sites)],
        "map_size": 16, "extent_deg": 8.0,
    })
    info = {"title": "Mini test set", "description": "tiny synthetic data for tests", "source": "synth",
            "synthetic": True, "visual_degrees": 8.0, "seed": seed}
    return DatasetTables(info=info, stimuli=pd.DataFrame(stim_rows), images=images, sites=sites,
                         responses=responses, trials=trials, rf_maps=rf_maps)
