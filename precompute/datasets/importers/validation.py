"""Validation of imported data: collect every problem, then refuse the import once with all of them.

A reader never guesses silently (FORMATS.md). Each importer records what it cannot map in a `Report`
while it reads (file, field, ids, what was expected, how to fix it) and keeps going where it can, so
one run names every problem; `check_data` then adds the problems of the selected data (duplicate ids,
NaN or infinite responses, constant sites, too few stimuli, sites without a region). `Report.raise_if_any`
turns the collection into one `UserError`, before anything is written: a refused import leaves the
database exactly as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from precompute.core.errors import UserError

log = logging.getLogger(__name__)

#: Fewer stimuli than this cannot give a meaningful correlation over stimuli.
MIN_STIMULI = 10
#: How many ids a problem lists before "... and N more".
MAX_IDS_SHOWN = 12


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (file, field), which ids, what, and how to fix it."""

    file: str
    field: str
    message: str
    fix: str
    ids: tuple[str, ...] = ()

    def format(self) -> str:
        where = f"{self.file}, {self.field}" if self.field else self.file
        text = f"{where}: {self.message}"
        if self.ids:
            shown = ", ".join(self.ids[:MAX_IDS_SHOWN])
            more = len(self.ids) - MAX_IDS_SHOWN
            text += f" ({len(self.ids)}: {shown}{f', ... and {more} more' if more > 0 else ''})"
        return f"{text}\n     fix: {self.fix}"


class ImportRefusedError(UserError):
    """An import with problems in its input; `problems` lists all of them."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        lines = [f"import refused: {len(self.problems)} problem(s) in the input; nothing was written"]
        lines += [f"  {i}. {p.format()}" for i, p in enumerate(self.problems, 1)]
        super().__init__("\n".join(lines))


@dataclass
class Report:
    """Problems collected while reading and checking one import."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, file: str, field: str, message: str, fix: str, ids: Iterable[object] = ()) -> None:
        self.problems.append(Problem(str(file), field, message, fix, tuple(str(i) for i in ids)))

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ImportRefusedError(self.problems)


def duplicates(values: Iterable[object]) -> list[str]:
    """Values that occur more than once, each listed once, in first-seen order."""
    series = pd.Series(list(values), dtype=object).astype(str)
    return list(dict.fromkeys(series[series.duplicated(keep=False)]))


def bad_sites(responses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks over sites (rows): any NaN/infinite response, and constant responses over stimuli."""
    finite = np.isfinite(responses)
    nonfinite = ~finite.all(axis=1)
    # constant: every finite value equal (a range of 0); only judged on sites without NaN
    with np.errstate(invalid="ignore"):
        span = np.nanmax(np.where(finite, responses, np.nan), axis=1, initial=-np.inf) - np.nanmin(
            np.where(finite, responses, np.nan), axis=1, initial=np.inf
        )
    constant = ~nonfinite & (span == 0)
    return nonfinite, constant


@dataclass
class Checked:
    """What `check_data` decided: the sites to keep and the sites it dropped (with why)."""

    keep_sites: np.ndarray
    dropped: dict[str, str]


def check_data(
    report: Report,
    *,
    stimulus_ids: Sequence[str],
    site_ids: Sequence[str],
    regions: Sequence[object],
    responses: np.ndarray,
    stimuli_file: str,
    stimulus_field: str,
    sites_file: str,
    site_field: str,
    responses_file: str,
    region_field: str = "region",
    drop_bad_sites: bool = False,
) -> Checked:
    """Add the data-level problems of the selected tables to `report`; return the sites to keep.

    With `drop_bad_sites`, sites with NaN/infinite or constant responses are dropped (and listed in
    the result) instead of refused.
    """
    dup = duplicates(stimulus_ids)
    if dup:
        report.add(
            stimuli_file, stimulus_field, "duplicate stimulus ids", "give every stimulus one row with a unique id", dup
        )
    dup = duplicates(site_ids)
    if dup:
        report.add(sites_file, site_field, "duplicate site ids", "give every site one row with a unique id", dup)
    if len(stimulus_ids) < MIN_STIMULI:
        report.add(
            stimuli_file,
            stimulus_field,
            f"only {len(stimulus_ids)} stimuli after selection; at least {MIN_STIMULI} are needed for "
            "a correlation over stimuli",
            "add stimuli, or select less (--variation, --preset)",
        )
    no_region = [
        s
        for s, r in zip(site_ids, regions, strict=True)
        if r is None or (isinstance(r, float) and np.isnan(r)) or str(r).strip() == ""
    ]
    if no_region:
        report.add(
            sites_file, region_field, "sites without a region", "give every site a region (V4, IT, ...)", no_region
        )

    keep = np.ones(len(site_ids), dtype=bool)
    dropped: dict[str, str] = {}
    if responses.size:
        nonfinite, constant = bad_sites(responses)
        ids = np.asarray(site_ids, dtype=object)
        if drop_bad_sites:
            for sid in ids[nonfinite]:
                dropped[str(sid)] = "NaN or infinite responses"
            for sid in ids[constant]:
                dropped[str(sid)] = "constant responses"
            keep = ~(nonfinite | constant)
            if dropped:
                log.warning(
                    "dropping %d site(s) with NaN/infinite or constant responses: %s", len(dropped), ", ".join(dropped)
                )
        else:
            if nonfinite.any():
                report.add(
                    responses_file,
                    "response",
                    "sites with NaN, infinite or missing responses",
                    "fix the data, or pass --drop-bad-sites to drop these sites",
                    ids[nonfinite],
                )
            if constant.any():
                report.add(
                    responses_file,
                    "response",
                    "sites whose responses are the same for every stimulus (their correlation is undefined)",
                    "pass --drop-bad-sites to drop these sites",
                    ids[constant],
                )
    return Checked(keep_sites=keep, dropped=dropped)
