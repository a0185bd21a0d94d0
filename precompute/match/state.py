"""What the engine's passes share: PassState, everything one pass over a plan's units reads, and Best, the
answer the passes build up (per-layer top-k, per-channel best, validity, pairs to redo exactly)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from precompute.core.feeds import ImageFeed
from precompute.match.plan import Pass, Plan
from precompute.match.schedule import Window
from precompute.match.topk import PAD_INDEX
from precompute.models.base import ActivationSource, LayerInfo

if TYPE_CHECKING:  # annotations only: torch is imported when the engine runs
    import torch


@dataclass(frozen=True)
class PassState:
    """The inputs of one pass over the units of `unit_pass`, built once per pass by engine.match_units.

    The rows are sorted by group (group_start[g]: the first row of group g). The accumulator has one row per
    row, then one column-sum row per group: `zext` holds their factors (the rows' z, then the groups'
    weights), stimuli in processing order (`order`, cut into the product steps `windows`)."""

    source: ActivationSource
    feed: ImageFeed
    layers: list[LayerInfo]
    plan: Plan
    unit_pass: Pass
    device: str
    order: np.ndarray  # (stimuli processed,) stimulus indices in processing order
    windows: list[Window]  # the product steps over `order`
    group: np.ndarray  # (rows,) each row's group, non-decreasing
    group_start: np.ndarray  # (groups + 1,)
    row_valid: np.ndarray  # (rows,) the row varies over its stimuli
    wsum: np.ndarray  # (groups,) each group's sum of weights
    zext: torch.Tensor  # (rows + groups, stimuli processed) float32 on `device`
    w_ordered: torch.Tensor  # (groups, stimuli processed) float32 on `device`
    uniform: bool  # every weight is 1
    timings: dict[str, float]  # shared by the passes: seconds per phase
    progress: Callable[[int], None]  # called with the number of stimuli just run
    on_window: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None  # (step, acc, sumsq)

    @property
    def n_rows(self) -> int:
        return len(self.group)

    @property
    def n_groups(self) -> int:
        return len(self.wsum)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


@dataclass
class Best:
    """The answer so far, rows in the accumulator's order (flat indices within a layer, PAD_INDEX / -inf padded).

    layer_top[l]   (r, flat), each (rows, k): best units within layer l
    featuremap[l]  (r, flat), each (rows, channels): best unit of every channel of layer l (empty: none kept)
    valid[l]       (groups, units of l): the unit has non-zero variance over the group
    flagged        (group, layer_idx, flat): pairs too ill-conditioned for float32 sums, redone exactly after
                   the passes (search.redo_ill_conditioned)"""

    layer_top: dict[int, tuple[np.ndarray, np.ndarray]]
    featuremap: dict[int, tuple[np.ndarray, np.ndarray]]
    valid: dict[int, np.ndarray]
    flagged: list[tuple[int, int, int]] = field(default_factory=list)

    @classmethod
    def empty(cls, layers: list[LayerInfo], n_rows: int, n_groups: int, k: int, featuremaps: bool) -> Best:
        layer_top = {
            la.layer_idx: (
                np.full((n_rows, min(k, la.units)), -np.inf, np.float32),
                np.full((n_rows, min(k, la.units)), PAD_INDEX, np.int64),
            )
            for la in layers
        }
        featuremap = {}
        if featuremaps:
            featuremap = {
                la.layer_idx: (
                    np.full((n_rows, la.channels), -np.inf, np.float32),
                    np.full((n_rows, la.channels), PAD_INDEX, np.int64),
                )
                for la in layers
            }
        valid = {la.layer_idx: np.zeros((n_groups, la.units), bool) for la in layers}
        return cls(layer_top, featuremap, valid)
