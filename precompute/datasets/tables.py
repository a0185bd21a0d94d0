"""The in-memory form of one dataset, as every generator and importer produces it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class DatasetTables:
    """Rows for the dataset tables of backend/schema/, without the `dataset` column.

    info:        dict of `datasets` columns (title, description, source, synthetic, visual_degrees,
                 n_repetitions, seed, input_hash)
    stimuli:     one row per stimulus, `stimuli` columns (stimulus_id, idx, category, object, ...)
    images:      PNG bytes per stimulus, in `stimuli.idx` order
    sites:       one row per site, `sites` columns (site_id, idx, region, reliability, rf_*, ...)
    responses:   float32 array (n_sites, n_stimuli), trial-averaged, rows in sites.idx order and
                 columns in stimuli.idx order
    trials:      optional float32 array (n_sites, n_stimuli, n_repetitions); NaN where a stimulus
                 has fewer repetitions
    rf_maps:     optional `site_rf_maps` rows (site_id, grid_responses, map, map_size, extent_deg)
    """

    info: dict
    stimuli: pd.DataFrame
    images: list[bytes]
    sites: pd.DataFrame
    responses: np.ndarray
    trials: np.ndarray | None = None
    rf_maps: pd.DataFrame | None = None
    extra: dict = field(default_factory=dict)
