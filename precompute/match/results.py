"""What the engine found: MatchResult (per-row top units, per layer and per channel), and unit coordinates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from precompute.match.plan import Plan
from precompute.models.base import LayerInfo


@dataclass
class MatchResult:
    """What the engine found. Unit indices: `flat` within a layer, `index` global (offsets[l] + flat).

    top_r, top_index        (rows, top_k): best units over the whole model (-inf / -1 padded)
    layer_top[l]            (r, flat), each (rows, layer_top_k): best units within layer l
    featuremap[l]           (r, flat), each (rows, channels): best unit of every channel of layer l
    valid[l]                (groups, units of l): the unit has non-zero variance over the group
    set_r, set_index        (sets, rows, k): with training-set checkpoints, each row's best units over each
                            nested training set (their r over that set); None without
    """

    layers: list[LayerInfo]
    offsets: np.ndarray
    group: np.ndarray
    row_valid: np.ndarray
    top_r: np.ndarray
    top_index: np.ndarray
    layer_top: dict[int, tuple[np.ndarray, np.ndarray]]
    featuremap: dict[int, tuple[np.ndarray, np.ndarray]]
    valid: dict[int, np.ndarray]
    plan: Plan
    timings: dict[str, float] = field(default_factory=dict)
    set_r: np.ndarray | None = None
    set_index: np.ndarray | None = None

    def reordered(self, rows: np.ndarray) -> MatchResult:
        """The same result with its rows taken in the order `rows`."""
        return MatchResult(
            layers=self.layers,
            offsets=self.offsets,
            group=self.group[rows],
            row_valid=self.row_valid[rows],
            top_r=self.top_r[rows],
            top_index=self.top_index[rows],
            layer_top={k: (v[rows], i[rows]) for k, (v, i) in self.layer_top.items()},
            featuremap={k: (v[rows], i[rows]) for k, (v, i) in self.featuremap.items()},
            valid=self.valid,
            plan=self.plan,
            timings=self.timings,
            set_r=None if self.set_r is None else self.set_r[:, rows],
            set_index=None if self.set_index is None else self.set_index[:, rows],
        )

    def locate(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global unit indices -> (layer_idx, flat)."""
        index = np.asarray(index, dtype=np.int64)
        layer = np.searchsorted(self.offsets, index, side="right") - 1
        return layer, index - self.offsets[layer]


def unit_coords(layer: LayerInfo, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices of one layer -> (channel, y, x)."""
    flat = np.asarray(flat, dtype=np.int64)
    hw = layer.height * layer.width
    return flat // hw, (flat % hw) // layer.width, flat % layer.width


def clip_r(values: np.ndarray) -> np.ndarray:
    """Rounding can put |r| a hair above 1; padding (-inf) stays."""
    return np.where(np.isfinite(values), np.clip(values, -1.0, 1.0), values).astype(np.float32)
