"""The hidden ground-truth encoding model behind the synthetic V4 and IT sites (no network, no torch).

V4 site: the V4-like feature maps of image_features.py (oriented energy, curvature-like conjunctions and
ON/OFF centre-surround contrast), weighted by the site's feature preferences and pooled in a Gaussian
receptive field (diameter at 1 SD ~0.5-3 degrees, growing with eccentricity), divisively normalised by
the unweighted feature energy in the same field.

IT site: a larger field (3-7 degrees) over nonlinear shape templates (rectified-squared 3 x 3 x feature
combinations of the V4-like maps at 0.5-degree resolution) plus an object- and category-tuned component
scaled by how much of the object falls in the field (the renderer's object mask), so IT carries category
information that V4 mostly does not.

Sites sit on 10 x 10 electrode arrays (corner electrodes missing, as on Utah arrays); receptive-field
centres and feature preferences vary smoothly over each array, so nearby sites are similar.
Rates = baseline (3-10 spikes/s) + gain * softplus(standardised drive, softly capped at 3 SD), so rates
run from a few to ~50 spikes/s; spike counts in the 70-170 ms window are Poisson with a trial-shared
multiplicative gain (a common source of trial-to-trial co-variability). The normalisation constants and
the drive's mean and SD are calibrated on the stimulus set (`GroundTruthModel.fit_pooled`) and reused for
the mapping squares.

V4 pools at 64 x 64 (image_features.POOL_SIZE); IT pools at 16 x 16 (0.5 degree).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from precompute.datasets.image_features import (
    N_CURV,
    N_FEATURES,
    N_GABOR,
    POOL_SIZE,
    average_pool,
    feature_maps,
    gaussian_weights,
)

log = logging.getLogger(__name__)

IT_SIZE = 16
N_TEMPLATES = 64
WINDOW_S = 0.1  # 70-170 ms
N_V4, N_IT = 88, 168
#: V4 normalisation constant as a multiple of the stimulus set's median pooled energy
V4_SEMISATURATION = 3.0
ANIMAL = "Synth"
HEMISPHERE = "L"


# --------------------------------------------------------------------------- the site population
@dataclass
class SitePopulation:
    """Identity, layout and hidden parameters of every site (V4 first, then IT)."""

    site_id: list[str]
    region: np.ndarray  # "V4" | "IT"
    subregion: list[str | None]
    array: list[str]
    row: np.ndarray
    col: np.ndarray
    rf_x: np.ndarray  # degrees, +x right
    rf_y: np.ndarray  # degrees, +y up
    rf_sigma: np.ndarray  # degrees
    base: np.ndarray  # spikes/s
    gain: np.ndarray  # spikes/s per unit softplus
    v4_weights: np.ndarray  # (n_v4, N_FEATURES)
    it_weights: np.ndarray  # (n_it, N_TEMPLATES)
    it_tuning: np.ndarray  # (n_it, 64 objects): object/category tuning
    it_shape_frac: np.ndarray  # (n_it,): weight of the shape component vs the category component
    templates: np.ndarray  # (N_FEATURES * 9, N_TEMPLATES)

    @property
    def is_v4(self) -> np.ndarray:
        return self.region == "V4"

    @property
    def true_rf_size_deg(self) -> np.ndarray:
        """Diameter of the 1-SD contour."""
        return 2.0 * self.rf_sigma


def _array_layout(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """n electrodes of a 10 x 10 array without its corners (96 sites), dropping random ones beyond n."""
    cells = [(r, c) for r in range(10) for c in range(10) if (r, c) not in {(0, 0), (0, 9), (9, 0), (9, 9)}]
    keep = np.sort(rng.choice(len(cells), size=n, replace=False))
    return [cells[i] for i in keep]


def _smooth_fields(rng: np.random.Generator, k: int, sigma: float = 2.0) -> np.ndarray:
    """k Gaussian random fields on the 10 x 10 array, unit SD: tuning that changes smoothly over cortex."""
    from scipy import ndimage

    f = ndimage.gaussian_filter(rng.standard_normal((k, 10, 10)), (0, sigma, sigma), mode="reflect")
    f = f - f.mean(axis=(1, 2), keepdims=True)
    return f / f.std(axis=(1, 2), keepdims=True)


def _v4_sites(rng: np.random.Generator) -> list[tuple]:
    """V4: array P, retinotopic: columns run rightwards, rows downwards, near-foveal with a contralateral
    (right, lower) bias. One (site_id, region, subregion, array, row, col, rf_x, rf_y, rf_sigma) per site."""
    sites = []
    v4_cells = _array_layout(N_V4, rng)
    warp = _smooth_fields(rng, 3, sigma=3.0)
    for r, c in v4_cells:
        x = -1.2 + 3.4 * c / 9 + 0.35 * warp[0, r, c] + 0.1 * rng.standard_normal()
        y = 1.4 - 3.4 * r / 9 + 0.35 * warp[1, r, c] + 0.1 * rng.standard_normal()
        x, y = float(np.clip(x, -3.6, 3.6)), float(np.clip(y, -3.6, 3.6))
        ecc = math.hypot(x, y)
        diameter = float(np.clip(0.45 + 0.45 * ecc + 0.25 * warp[2, r, c] + 0.1 * rng.standard_normal(), 0.5, 3.0))
        sites.append((f"{ANIMAL}_{HEMISPHERE}_P_{r}_{c}", "V4", None, "P", r, c, x, y, diameter / 2))
    return sites


def _it_sites(rng: np.random.Generator) -> list[tuple]:
    """IT: arrays M (pIT on the posterior half, cIT on the anterior half) and A (aIT); fields grow
    anteriorly. Rows as in `_v4_sites`."""
    sites = []
    for array, n in (("M", N_IT // 2), ("A", N_IT - N_IT // 2)):
        cells = _array_layout(n, rng)
        warp = _smooth_fields(rng, 3, sigma=3.0)
        for r, c in cells:
            sub = "aIT" if array == "A" else ("pIT" if c < 5 else "cIT")
            lo = {"pIT": 3.0, "cIT": 3.8, "aIT": 4.5}[sub]
            diameter = float(np.clip(lo + 0.6 * warp[2, r, c] + 0.3 * rng.standard_normal() + 1.0, 3.0, 7.0))
            x = float(0.6 + 0.7 * warp[0, r, c] + 0.2 * rng.standard_normal())
            y = float(-0.3 + 0.7 * warp[1, r, c] + 0.2 * rng.standard_normal())
            sites.append((f"{ANIMAL}_{HEMISPHERE}_{array}_{r}_{c}", "IT", sub, array, r, c, x, y, diameter / 2))
    return sites


def _v4_feature_weights(rng: np.random.Generator, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """V4 feature preferences (n_v4, N_FEATURES) of the sites at rows, cols: smooth over the array,
    log-normal, normalised to sum 1."""
    fields = _smooth_fields(rng, N_FEATURES)
    logw = 2.0 * fields[:, rows, cols].T + 0.6 * rng.standard_normal((N_V4, N_FEATURES))
    logw[:, N_GABOR + N_CURV :] += 0.7  # every site responds somewhat to luminance contrast (mapping works)
    v4_weights = np.exp(logw)
    v4_weights /= v4_weights.sum(axis=1, keepdims=True)
    return v4_weights


def _it_preferences(
    rng: np.random.Generator,
    rows: np.ndarray,
    cols: np.ndarray,
    arrays: np.ndarray,
    objects_per_category: int,
    n_categories: int,
) -> tuple[np.ndarray, np.ndarray]:
    """IT template preferences (n_it, N_TEMPLATES) and object/category tuning (n_it, n_objects), smooth
    within each array, of the IT sites at rows, cols on arrays."""
    n_obj = objects_per_category * n_categories
    it_w = np.empty((N_IT, N_TEMPLATES))
    it_tuning = np.empty((N_IT, n_obj))
    cat_of_obj = np.repeat(np.arange(n_categories), objects_per_category)
    for array in ("M", "A"):
        sel = arrays == array
        tf = _smooth_fields(rng, N_TEMPLATES)
        cf = _smooth_fields(rng, n_categories, sigma=1.5)
        rr, cc = rows[sel], cols[sel]
        m = int(sel.sum())
        it_w[sel] = np.exp(1.5 * tf[:, rr, cc].T + 0.6 * rng.standard_normal((m, N_TEMPLATES)))
        cat_pref = 1.3 * cf[:, rr, cc].T + 0.5 * rng.standard_normal((m, n_categories))
        obj_pref = 0.45 * rng.standard_normal((m, n_obj))
        it_tuning[sel] = np.exp(cat_pref[:, cat_of_obj] + obj_pref)
    it_w /= it_w.sum(axis=1, keepdims=True)
    it_tuning /= it_tuning.mean(axis=1, keepdims=True)
    return it_w, it_tuning


def _shape_templates(rng: np.random.Generator) -> np.ndarray:
    """Sparse random 3 x 3 x feature templates (N_FEATURES * 9, N_TEMPLATES), zero-mean, unit norm."""
    templates = rng.standard_normal((N_FEATURES * 9, N_TEMPLATES)) * (rng.random((N_FEATURES * 9, N_TEMPLATES)) < 0.3)
    templates -= templates.mean(axis=0, keepdims=True)
    templates /= np.linalg.norm(templates, axis=0, keepdims=True)
    return templates


def make_population(rng: np.random.Generator, objects_per_category: int = 8, n_categories: int = 8) -> SitePopulation:
    """Draw the 88 V4 + 168 IT sites (array P for V4; arrays M and A for IT) from `rng`."""
    columns = zip(*(_v4_sites(rng) + _it_sites(rng)), strict=True)
    ids, regions, subregions, arrays, rows, cols, rf_x, rf_y, rf_sigma = (list(col) for col in columns)
    rows_a, cols_a = np.array(rows), np.array(cols)
    regions_a = np.array(regions)
    is_v4 = regions_a == "V4"

    v4_weights = _v4_feature_weights(rng, rows_a[is_v4], cols_a[is_v4])
    it_w, it_tuning = _it_preferences(
        rng, rows_a[~is_v4], cols_a[~is_v4], np.array(arrays)[~is_v4], objects_per_category, n_categories
    )
    sub_a = np.array([s or "" for s in subregions])[~is_v4]
    shape_frac = np.clip(
        np.where(sub_a == "aIT", 0.4, np.where(sub_a == "cIT", 0.5, 0.6)) + 0.1 * rng.standard_normal(N_IT), 0.2, 0.8
    )
    templates = _shape_templates(rng)

    n = len(ids)
    base = rng.uniform(3.0, 10.0, n)
    gain = np.exp(rng.normal(math.log(6.5), 0.4, n))
    return SitePopulation(
        site_id=ids,
        region=regions_a,
        subregion=subregions,
        array=arrays,
        row=rows_a,
        col=cols_a,
        rf_x=np.array(rf_x),
        rf_y=np.array(rf_y),
        rf_sigma=np.array(rf_sigma),
        base=base,
        gain=gain,
        v4_weights=v4_weights,
        it_weights=it_w,
        it_tuning=it_tuning,
        it_shape_frac=shape_frac,
        templates=templates.astype(np.float32),
    )


# --------------------------------------------------------------------------- the model
@dataclass
class PooledDrive:
    """Per-stimulus quantities pooled in every site's field (enough to compute rates)."""

    v4_num: np.ndarray  # (n, n_v4) weighted feature energy
    v4_den: np.ndarray  # (n, n_v4) unweighted mean feature energy (normaliser)
    it_num: np.ndarray  # (n, n_it)
    it_den: np.ndarray  # (n, n_it)
    it_cat: np.ndarray  # (n, n_it) object tuning x object overlap with the field


def concat_pooled(parts: list[PooledDrive]) -> PooledDrive:
    """Batches of pooled drive -> one, in order (float64 for the calibration statistics)."""
    return PooledDrive(
        **{
            k: np.concatenate([getattr(p, k) for p in parts]).astype(np.float64)
            for k in PooledDrive.__dataclass_fields__
        }
    )


@dataclass
class GroundTruthModel:
    """The hidden encoder: `fit` calibrates normalisation constants on the stimulus set (learned state
    ends in `_`), `rates` maps images to firing rates (spikes/s) of every site."""

    population: SitePopulation
    chunk: int = 64
    feature_scale_: np.ndarray | None = field(default=None, repr=False)
    v4_sigma_: np.ndarray | None = field(default=None, repr=False)
    it_sigma_: np.ndarray | None = field(default=None, repr=False)
    mu_: np.ndarray | None = field(default=None, repr=False)
    sd_: np.ndarray | None = field(default=None, repr=False)
    cat_mu_: np.ndarray | None = field(default=None, repr=False)
    cat_sd_: np.ndarray | None = field(default=None, repr=False)
    pooled_: PooledDrive | None = field(default=None, repr=False)  # the calibration set's pooled drive
    _w: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def _weights(self) -> tuple[np.ndarray, np.ndarray]:
        if self._w is None:
            pop = self.population
            v4, it = pop.is_v4, ~pop.is_v4
            self._w = (
                gaussian_weights(pop.rf_x[v4], pop.rf_y[v4], pop.rf_sigma[v4], POOL_SIZE),  # (s, 4096)
                gaussian_weights(pop.rf_x[it], pop.rf_y[it], pop.rf_sigma[it], IT_SIZE),
            )  # (s, 256)
        return self._w

    def calibrate_features(self, images: np.ndarray) -> GroundTruthModel:
        """Per-channel feature scale (mean over a first batch of the stimulus set), so channels are comparable."""
        self.feature_scale_ = feature_maps(images).mean(axis=(0, 2, 3)).astype(np.float32) + 1e-6
        return self

    def pool_batch(
        self, images: np.ndarray, masks: np.ndarray | None = None, object_idx: np.ndarray | None = None
    ) -> PooledDrive:
        """Pool the features of one batch of images (b, 256, 256) in every site's field.

        masks: the object's alpha (b, 16k, 16k) and object_idx its index 0..63 (-1: no object), for the
        IT category component; None (e.g. mapping squares) means no object.
        """
        if self.feature_scale_ is None:
            raise RuntimeError("GroundTruthModel.feature_scale_ is unset: call calibrate_features() or fit() first")
        pop = self.population
        w_v4, w_it = self._weights()
        b = len(images)
        f = feature_maps(images)  # (b, C, 64, 64)
        f /= self.feature_scale_[None, :, None, None]
        pv = (f.reshape(b * N_FEATURES, -1) @ w_v4.T).reshape(b, N_FEATURES, -1)  # (b, C, s_v4)
        t = self._templates(average_pool(average_pool(f, 2), POOL_SIZE // IT_SIZE // 2))  # (b, K, 16, 16)
        pt = (t.reshape(b * N_TEMPLATES, -1) @ w_it.T).reshape(b, N_TEMPLATES, -1)
        if masks is None or object_idx is None:
            cat = np.zeros((b, w_it.shape[0]), dtype=np.float32)
        else:
            m = average_pool(np.asarray(masks, dtype=np.float32), masks.shape[-1] // IT_SIZE).reshape(b, -1)
            overlap = m @ w_it.T  # (b, s_it): the object's coverage of the field
            oi = np.asarray(object_idx)
            tun = np.where(oi[:, None] >= 0, pop.it_tuning[:, np.maximum(oi, 0)].T, 0.0)
            cat = (tun * overlap).astype(np.float32)
        return PooledDrive(
            v4_num=np.einsum("bcs,sc->bs", pv, pop.v4_weights.astype(np.float32)),
            v4_den=pv.mean(axis=1),
            it_num=np.einsum("bks,sk->bs", pt, pop.it_weights.astype(np.float32)),
            it_den=pt.mean(axis=1),
            it_cat=cat,
        )

    def pooled(
        self, images: np.ndarray, masks: np.ndarray | None = None, object_idx: np.ndarray | None = None, progress=None
    ) -> PooledDrive:
        """`pool_batch` over all images in chunks (bounded memory)."""
        parts = []
        for start in range(0, len(images), self.chunk):
            sl = slice(start, start + self.chunk)
            parts.append(
                self.pool_batch(
                    images[sl], None if masks is None else masks[sl], None if object_idx is None else object_idx[sl]
                )
            )
            if progress is not None:
                progress(len(images[sl]))
        return concat_pooled(parts)

    def _templates(self, f16: np.ndarray) -> np.ndarray:
        """Rectified-squared 3 x 3 x feature templates at 0.5-degree resolution: shape conjunctions."""
        b = f16.shape[0]
        padded = np.pad(f16, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
        win = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))  # (b, C, 16, 16, 3, 3)
        patches = win.transpose(0, 2, 3, 1, 4, 5).reshape(b * IT_SIZE * IT_SIZE, N_FEATURES * 9)
        t = patches @ self.population.templates  # (b*256, K)
        t = np.maximum(t, 0) ** 2
        return t.reshape(b, IT_SIZE, IT_SIZE, N_TEMPLATES).transpose(0, 3, 1, 2)

    def fit(self, images: np.ndarray, masks: np.ndarray, object_idx: np.ndarray, progress=None) -> GroundTruthModel:
        """Calibrate on the stimulus set: feature scales, normalisation constants, drive mean and SD."""
        self.calibrate_features(images[: self.chunk])
        return self.fit_pooled(self.pooled(images, masks, object_idx, progress=progress))

    def fit_pooled(self, pooled: PooledDrive) -> GroundTruthModel:
        """Calibrate from the stimulus set's pooled drive (after `calibrate_features`): the normalisation
        constants (a multiple of the median pool energy: responses still grow with contrast at typical
        contrasts, as V4's do) and the drives' mean and SD."""
        self.v4_sigma_ = V4_SEMISATURATION * np.median(pooled.v4_den, axis=0)
        self.it_sigma_ = np.median(pooled.it_den, axis=0)
        v4_drive, it_shape = self._normalised(pooled)
        self.mu_ = np.concatenate([v4_drive.mean(axis=0), it_shape.mean(axis=0)])
        self.sd_ = np.concatenate([v4_drive.std(axis=0), it_shape.std(axis=0)]) + 1e-12
        self.cat_mu_ = pooled.it_cat.mean(axis=0)
        self.cat_sd_ = pooled.it_cat.std(axis=0) + 1e-12
        self.pooled_ = pooled
        return self

    def _normalised(self, p: PooledDrive) -> tuple[np.ndarray, np.ndarray]:
        return p.v4_num / (self.v4_sigma_ + p.v4_den), p.it_num / (self.it_sigma_ + p.it_den)

    def rates_from_pooled(self, p: PooledDrive) -> np.ndarray:
        """Firing rates (n_sites, n_stimuli) in spikes/s."""
        pop = self.population
        v4_drive, it_shape = self._normalised(p)
        z = (np.concatenate([v4_drive, it_shape], axis=1) - self.mu_) / self.sd_  # (n, sites)
        zc = (p.it_cat - self.cat_mu_) / self.cat_sd_
        n_v4 = int(pop.is_v4.sum())
        a = pop.it_shape_frac
        z[:, n_v4:] = np.sqrt(a) * z[:, n_v4:] + np.sqrt(1 - a) * zc
        z = 3.0 * np.tanh(z / 3.0)  # soft ceiling: rates saturate instead of running away
        rate = pop.base[None, :] + pop.gain[None, :] * np.logaddexp(0.0, 1.5 * z - 0.5) / 1.5
        return rate.T

    def rates(
        self, images: np.ndarray, masks: np.ndarray | None = None, object_idx: np.ndarray | None = None, progress=None
    ) -> np.ndarray:
        """Firing rates (n_sites, n_images) in spikes/s for images (n, 256, 256) in [0, 1]."""
        return self.rates_from_pooled(self.pooled(images, masks, object_idx, progress=progress))


def spike_counts(
    rates: np.ndarray, n_repetitions: int, rng: np.random.Generator, gain_sd: float = 0.12, window_s: float = WINDOW_S
) -> np.ndarray:
    """Poisson spike counts (sites, stimuli, repetitions) float32 in the response window; each trial
    (stimulus, repetition) has one multiplicative log-normal gain shared by all sites."""
    n_sites, n_stim = rates.shape
    g = np.exp(rng.normal(-(gain_sd**2) / 2, gain_sd, (1, n_stim, n_repetitions)))
    lam = rates[:, :, None] * window_s * g
    return rng.poisson(lam).astype(np.float32)
