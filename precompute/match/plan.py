"""The memory plan: how many stimuli to stage per product step and which units go in which pass.

Memory of one pass is, per unit in the pass (DESIGN.md, Performance model):
  4 bytes x (rows + groups)   the float32 accumulator S (units x rows), plus one column per group
                              holding the unit's sum over the group's stimuli (folded into the product)
  4 bytes x stage             the staged activations (stage stimuli x units)
  4 bytes                     the per-unit shift (first-batch median)
  13 bytes x groups           sums of squares (float64), 1/sd (float32) and the validity flag
plus, once per run, the source's output for one inference batch over all units and a fixed reserve
(interpreter, onnxruntime session, top-k temporaries). Rows are budgeted exactly like units: permuted
or split-restricted copies of the sites make the accumulator wider, and the plan splits units sooner.

The default budget is `DEFAULT_RAM_FRACTION` of the machine's total RAM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import psutil

from backend.config import get_settings
from precompute.core.errors import UserError
from precompute.models.base import LayerInfo

#: Fraction of total RAM used when no --memory-gb is given: leaves room for the OS, the page cache
#: that DuckDB and onnxruntime use, and another process; Lite0 with 256 sites fits one pass at 24 GiB.
DEFAULT_RAM_FRACTION = 0.5
#: Interpreter and libraries (~0.6 GiB with torch and onnxruntime loaded), onnxruntime's arena beyond
#: the batch's outputs, top-k temporaries (bounded by search.TOPK_TEMP_BYTES). Measured with Lite0.
DEFAULT_RESERVE_BYTES = 1 << 30
#: Largest staged product step: the product reaches its peak from ~128 stimuli on (benchmarks/bench_match.py).
MAX_STAGE = 256
MIN_STAGE = 128
GiB = 1 << 30


def default_memory_budget() -> int:
    """The engine's budget when none is given, in bytes: $UNITSCOPE_MEMORY_GB if set (e.g. for the demo
    on a machine shared with other jobs), else DEFAULT_RAM_FRACTION of this machine's total RAM."""
    raw = get_settings().memory_gb
    if raw:
        try:
            gb = float(raw)
        except ValueError:
            gb = -1.0
        if not gb > 0:
            raise UserError(f"UNITSCOPE_MEMORY_GB must be a positive number of GiB; got {raw!r}")
        return int(gb * GiB)
    return int(psutil.virtual_memory().total * DEFAULT_RAM_FRACTION)


@dataclass(frozen=True)
class Segment:
    """Units [start, stop) (flat indices) of one layer; always whole channels."""

    layer_idx: int
    start: int
    stop: int

    @property
    def units(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Pass:
    segments: tuple[Segment, ...]

    @property
    def units(self) -> int:
        return sum(s.units for s in self.segments)

    @property
    def layer_indices(self) -> list[int]:
        return sorted({s.layer_idx for s in self.segments})


@dataclass(frozen=True)
class Plan:
    passes: tuple[Pass, ...]
    stage: int
    batch_size: int
    budget_bytes: int
    estimated_peak_bytes: int


def bytes_per_unit(n_rows: int, n_groups: int, stage: int) -> int:
    return 4 * (n_rows + n_groups) + 4 * stage + 4 + 13 * n_groups


def _pack(layers: list[LayerInfo], capacity: int) -> list[Pass] | None:
    """Greedy packing of layers (in order) into passes of at most `capacity` units, splitting a layer
    at channel boundaries when it does not fit; None when one channel alone exceeds the capacity."""
    passes: list[list[Segment]] = [[]]
    room = capacity
    for layer in layers:
        per_channel = layer.height * layer.width
        if per_channel > capacity:
            return None
        c = 0
        while c < layer.channels:
            take = min(layer.channels - c, room // per_channel)
            if take == 0:
                passes.append([])
                room = capacity
                continue
            passes[-1].append(Segment(layer.layer_idx, c * per_channel, (c + take) * per_channel))
            room -= take * per_channel
            c += take
    return [Pass(tuple(p)) for p in passes if p]


def plan_passes(
    layers: list[LayerInfo],
    n_rows: int,
    n_stimuli: int,
    budget_bytes: int,
    *,
    n_groups: int = 1,
    batch_size: int = 16,
    reserve_bytes: int = DEFAULT_RESERVE_BYTES,
    max_stage: int = MAX_STAGE,
    min_stage: int = MIN_STAGE,
) -> Plan:
    """Fewest passes first (each pass re-runs inference), then the largest stage with that many passes."""
    if not layers:
        raise UserError("the model exposes no layers; nothing to match")
    total_units = sum(layer.units for layer in layers)
    max_stage = max(1, min(max_stage, n_stimuli))
    min_stage = max(1, min(min_stage, max_stage))
    # The source returns one inference batch over (at most) every unit; shrink the batch under tiny budgets.
    batch = max(1, min(batch_size, n_stimuli))
    while batch > 1 and 4 * batch * total_units > (budget_bytes - reserve_bytes) // 4:
        batch //= 2
    avail = budget_bytes - reserve_bytes - 4 * batch * total_units

    def passes_for(stage: int) -> list[Pass] | None:
        capacity = avail // bytes_per_unit(n_rows, n_groups, stage)
        return _pack(layers, capacity) if capacity > 0 else None

    best = passes_for(min_stage)
    if best is None:
        need_units = max(layer.height * layer.width for layer in layers)
        need = reserve_bytes + 4 * total_units + need_units * bytes_per_unit(n_rows, n_groups, min_stage)
        raise UserError(
            f"the memory budget of {budget_bytes / GiB:.2f} GiB is too small for {n_rows} rows "
            f"(at least {math.ceil(need / GiB * 100) / 100:.2f} GiB are needed); raise --memory-gb"
        )
    stage = min_stage
    for candidate in range(max_stage, min_stage, -32 if max_stage - min_stage >= 32 else -1):
        found = passes_for(candidate)
        if found is not None and len(found) == len(best):
            stage, best = candidate, found
            break
    widest = max(p.units for p in best)
    peak = reserve_bytes + 4 * batch * total_units + widest * bytes_per_unit(n_rows, n_groups, stage)
    return Plan(tuple(best), stage, batch, budget_bytes, peak)
