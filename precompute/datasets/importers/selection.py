"""What to keep at import, shared by every format: variations, time bin, excluded sites, regions, presets.

Selection happens before averaging, so a large assembly is read only where it is kept. Options:

    --variation 6 | 0,3        HvM variation levels (stimulus metadata `variation`, 0/3/6 or V0/V3/V6)
    --time-bin 70-170          keep time bins inside [70, 170] ms and average them
    --exclude-sites PATTERN..  site id globs (Tito_L_P_*), exact ids, or files listing ids one per line
    --region V4,IT             keep only these regions
    --preset majajhong2015     Brain-Score's selection for the seed paper's set: variation 6, 70-170 ms,
                               without the 40 V4 sites of Tito's array (Tito_L_P_*): 2,560 stimuli,
                               88 V4 + 168 IT sites

Explicit options override the preset's value for the same option.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from precompute.core.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """What to keep. `None` means keep everything for that option.

    exclude_groups: sites to drop by their coordinates, each a mapping that must match entirely
    (e.g. {"animal": "Tito", "region": "V4"}); used by the preset where site ids do not name the array.
    """

    variations: frozenset[int] | None = None
    time_bin: tuple[float, float] | None = None
    exclude_sites: tuple[str, ...] = ()
    regions: frozenset[str] | None = None
    exclude_groups: tuple[tuple[tuple[str, str], ...], ...] = ()
    preset: str | None = None

    @property
    def is_empty(self) -> bool:
        return self == Selection()

    def describe(self) -> str:
        """A short human-readable summary (stored in the dataset description)."""
        parts = []
        if self.preset:
            parts.append(f"preset {self.preset}")
        if self.variations is not None:
            parts.append("variation " + ",".join(str(v) for v in sorted(self.variations)))
        if self.time_bin is not None:
            parts.append(f"time bin {self.time_bin[0]:g}-{self.time_bin[1]:g} ms")
        if self.regions is not None:
            parts.append("regions " + ",".join(sorted(self.regions)))
        if self.exclude_sites:
            shown = ", ".join(self.exclude_sites[:5]) + (" ..." if len(self.exclude_sites) > 5 else "")
            parts.append(f"excluding sites {shown}")
        return "; ".join(parts) if parts else "everything"


#: Brain-Score's selection for MajajHong2015 as the seed paper used it.
PRESETS: dict[str, Selection] = {
    "majajhong2015": Selection(
        variations=frozenset({6}),
        time_bin=(70.0, 170.0),
        exclude_sites=("Tito_L_P_*",),
        exclude_groups=((("animal", "Tito"), ("region", "V4")),),
        preset="majajhong2015",
    ),
}


def parse_variations(values: str | Sequence[str] | None) -> frozenset[int] | None:
    """'6', '0,3', ['0', '3'] or 'V6' -> {6} / {0, 3}."""
    if values is None:
        return None
    items = [values] if isinstance(values, str) else list(values)
    out = set()
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            level = variation_level(part)
            if level is None:
                raise UserError(f"--variation {part!r} is not a variation level; use numbers like 6 or 0,3")
            out.add(level)
    if not out:
        raise UserError("--variation needs at least one level, e.g. --variation 6")
    return frozenset(out)


def variation_level(value: object) -> int | None:
    """0/3/6, '6', 'V6', b'V6' -> int; None when it is not a level."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) or value != int(value) else int(value)
    match = re.fullmatch(r"\s*[Vv]?(\d+)(\.0+)?\s*", str(value))
    return int(match.group(1)) if match else None


def parse_time_bin(text: str | None) -> tuple[float, float] | None:
    """'70-170' -> (70.0, 170.0)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d*)?)\s*(?:-|:|,|\.\.)\s*(-?\d+(?:\.\d*)?)\s*(ms)?\s*", text)
    if not match:
        raise UserError(f"--time-bin {text!r}: write the window in ms as START-END, e.g. --time-bin 70-170")
    lo, hi = float(match.group(1)), float(match.group(2))
    if hi <= lo:
        raise UserError(f"--time-bin {text!r}: the end must be after the start, e.g. --time-bin 70-170")
    return lo, hi


def parse_regions(values: str | Sequence[str] | None) -> frozenset[str] | None:
    """'V4,IT' or ['V4', 'IT'] -> {'V4', 'IT'}."""
    if values is None:
        return None
    items = [values] if isinstance(values, str) else list(values)
    out = frozenset(p.strip() for item in items for p in str(item).split(",") if p.strip())
    if not out:
        raise UserError("--region needs at least one region, e.g. --region V4,IT")
    return out


#: name endings of a file of site ids (see looks_like_id_file)
_ID_FILE_SUFFIXES = (".txt", ".csv", ".tsv", ".lst", ".list")


def looks_like_id_file(value: str) -> bool:
    """Whether an --exclude-sites value is meant as a file of site ids rather than an id or a glob: no glob
    characters, and a path separator or a .txt/.csv/.tsv/.lst/.list name."""
    if set(value) & set("*?["):
        return False
    return "/" in value or "\\" in value or value.lower().endswith(_ID_FILE_SUFFIXES)


def read_exclude(values: Sequence[str] | None) -> tuple[str, ...]:
    """Globs or ids as given, plus the ids listed (one per line, # comments) in any value that is a file.

    A value that looks like a file (`looks_like_id_file`) but is not one is refused: taken as a glob it would
    match no site and exclude nothing, silently."""
    out: list[str] = []
    for value in values or ():
        path = Path(value)
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    out.append(line)
        elif looks_like_id_file(value):
            raise UserError(
                f"--exclude-sites {value!r}: no such file (a file lists site ids, one per line); "
                "check the path, or give site ids or globs such as 'V4-01*'"
            )
        else:
            out.append(value)
    return tuple(out)


def build_selection(
    *,
    preset: str | None = None,
    variation: str | Sequence[str] | None = None,
    time_bin: str | None = None,
    exclude_sites: Sequence[str] | None = None,
    region: str | Sequence[str] | None = None,
) -> Selection:
    """The selection the command-line options ask for; explicit options override the preset's."""
    base = Selection()
    if preset is not None:
        key = preset.strip().lower()
        if key not in PRESETS:
            raise UserError(f"unknown --preset {preset!r}; known presets: {', '.join(PRESETS)}")
        base = PRESETS[key]
    changes: dict = {}
    if variation is not None:
        changes["variations"] = parse_variations(variation)
    if time_bin is not None:
        changes["time_bin"] = parse_time_bin(time_bin)
    if exclude_sites:
        changes["exclude_sites"] = base.exclude_sites + read_exclude(exclude_sites)
    if region is not None:
        changes["regions"] = parse_regions(region)
    return replace(base, **changes)


# ---------------------------------------------------------------------------- applying a selection
def stimulus_mask(
    variations: Sequence[object] | None, selection: Selection, *, source: str, hint: str = ""
) -> np.ndarray | None:
    """Which stimuli to keep by variation level (None: keep all). `variations` may hold 6, '6' or 'V6'.

    A selection that keeps no stimulus is a UserError naming the levels present (and `hint`)."""
    if selection.variations is None:
        return None
    if variations is None:
        if selection.preset:
            log.warning("%s has no variation levels: preset %s keeps every stimulus", source, selection.preset)
            return None
        raise UserError(
            f"--variation: {source} has no `variation` column, so stimuli cannot be selected by "
            "variation; add the column or leave out --variation"
        )
    levels = np.array([variation_level(v) for v in variations], dtype=object)
    present = sorted({lv for lv in levels.tolist() if lv is not None})
    missing = sorted(set(selection.variations) - set(present))
    asked = ",".join(str(v) for v in sorted(selection.variations))
    if len(missing) == len(selection.variations):
        raise UserError(
            f"--variation {asked}: {source} has no stimulus at that level; levels present: "
            f"{', '.join(str(v) for v in present) or 'none'}" + (f". {hint}" if hint else "")
        )
    if missing:
        log.warning(
            "--variation: %s has no stimulus at level(s) %s (present: %s)",
            source,
            ", ".join(str(v) for v in missing),
            ", ".join(str(v) for v in present),
        )
    return np.array([lv in selection.variations for lv in levels], dtype=bool)


def site_mask(
    site_ids: Sequence[str],
    selection: Selection,
    coords: Mapping[str, Sequence[object]] | None = None,
) -> np.ndarray:
    """Which sites to keep: region filter, id globs / ids to exclude, and coordinate groups to exclude."""
    ids = [str(s) for s in site_ids]
    keep = np.ones(len(ids), dtype=bool)
    coords = dict(coords or {})
    if selection.regions is not None:
        region = coords.get("region")
        if region is None:
            raise UserError("--region: the data has no region for its sites")
        wanted = {r.lower() for r in selection.regions}
        in_region = np.array([str(r).lower() in wanted for r in region], dtype=bool)
        if len(ids) and not in_region.any():
            raise UserError(
                f"--region {','.join(sorted(selection.regions))}: no site is in that region; regions "
                f"present: {', '.join(sorted({str(r) for r in region}))}"
            )
        keep &= in_region
    if selection.exclude_sites:
        patterns = selection.exclude_sites
        excluded = np.array([any(fnmatch.fnmatchcase(s, p) for p in patterns) for s in ids], dtype=bool)
        unused = [p for p in patterns if not any(fnmatch.fnmatchcase(s, p) for s in ids)]
        if unused and not selection.preset:
            log.warning("--exclude-sites: no site matches %s", ", ".join(unused))
        keep &= ~excluded
    for group in selection.exclude_groups:
        if all(key in coords for key, _ in group):
            hit = np.ones(len(ids), dtype=bool)
            for key, value in group:
                hit &= np.array([str(v).lower() == value.lower() for v in coords[key]], dtype=bool)
            keep &= ~hit
    return keep


def time_bin_indices(
    starts: Sequence[float] | None, ends: Sequence[float] | None, selection: Selection, *, source: str
) -> np.ndarray | None:
    """Indices of the time bins inside the selected window (None: no time-bin selection asked for)."""
    if selection.time_bin is None:
        return None
    if starts is None or ends is None:
        raise UserError(
            f"--time-bin: {source} has no time_bin_start/time_bin_end coordinates to select from; leave out --time-bin"
        )
    lo, hi = selection.time_bin
    starts_a = np.asarray(starts, dtype=float)
    ends_a = np.asarray(ends, dtype=float)
    idx = np.flatnonzero((starts_a >= lo) & (ends_a <= hi))
    if idx.size == 0:
        bins = ", ".join(f"{s:g}-{e:g}" for s, e in zip(starts_a, ends_a, strict=True))
        raise UserError(
            f"--time-bin {lo:g}-{hi:g}: no time bin of {source} lies inside that window; its bins are {bins} (ms)"
        )
    return idx
