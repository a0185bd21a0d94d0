"""A dataset as the engine needs it, read from the working database: stimuli in idx order with their PNG
bytes, and the (sites x stimuli) responses aligned by id."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from precompute.core.catalog import require_dataset
from precompute.core.errors import UserError


@dataclass
class MatchInputs:
    """A dataset as the engine needs it: stimuli in idx order and responses aligned by id."""

    stimulus_ids: list[str]
    pngs: list[bytes]
    site_ids: list[str]
    responses: np.ndarray  # (sites, stimuli) float64, NaN where a site has no response to a stimulus


def load_inputs(con, dataset: str) -> MatchInputs:
    """Stimuli (idx order), their images and the (sites x stimuli) responses, aligned by id and checked."""
    stim = con.execute("SELECT stimulus_id, idx FROM stimuli WHERE dataset = ? ORDER BY idx", [dataset]).fetchall()
    if not stim:
        require_dataset(con, dataset)
        raise UserError(
            f"dataset {dataset!r} has no stimuli; re-import it (`python -m precompute datasets import ... --replace`)"
        )
    stimulus_ids = [str(s) for s, _ in stim]
    if [i for _, i in stim] != list(range(len(stim))):
        raise UserError(f"dataset {dataset!r}: stimuli.idx is not 0..{len(stim) - 1}; re-import the dataset")
    png_by_id = dict(
        con.execute("SELECT stimulus_id, png FROM stimulus_images WHERE dataset = ?", [dataset]).fetchall()
    )
    missing = [s for s in stimulus_ids if s not in png_by_id]
    if missing:
        raise UserError(f"dataset {dataset!r}: {len(missing)} stimuli have no image (e.g. {missing[0]}); re-import it")
    sites = con.execute("SELECT site_id, idx FROM sites WHERE dataset = ? ORDER BY idx", [dataset]).fetchall()
    if not sites:
        raise UserError(f"dataset {dataset!r} has no sites")
    site_ids = [str(s) for s, _ in sites]
    resp = con.execute("SELECT site_id, stimulus_id, response FROM responses WHERE dataset = ?", [dataset]).df()
    site_pos = {s: i for i, s in enumerate(site_ids)}
    stim_pos = {s: i for i, s in enumerate(stimulus_ids)}
    rows = resp["site_id"].map(site_pos)
    cols = resp["stimulus_id"].map(stim_pos)
    if rows.isna().any() or cols.isna().any():
        raise UserError(f"dataset {dataset!r}: responses name sites or stimuli that the dataset does not have")
    matrix = np.full((len(site_ids), len(stimulus_ids)), np.nan)
    matrix[rows.to_numpy(int), cols.to_numpy(int)] = resp["response"].to_numpy(np.float64)
    return MatchInputs(stimulus_ids, [bytes(png_by_id[s]) for s in stimulus_ids], site_ids, matrix)
