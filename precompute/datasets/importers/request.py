"""`ImportRequest`: one import of real recordings, as the command line and a batch file's [[import]] give it.

    datasets import --name NAME --format brainio --assembly FILE.nc --stimuli FILE.csv --images FILE.zip
    datasets import --name NAME --format hvm-hdf5 --path ventral_neural_data.hdf5
    datasets import --name NAME --format folder --path DIR

Selection (every format): --variation 6 | 0,3, --time-bin 70-170, --exclude-sites PATTERN|FILE ...,
--region V4,IT, --preset majajhong2015 (variation 6, 70-170 ms, without Tito_L_P_*: 2,560 stimuli,
88 V4 + 168 IT). Problems in the input are all reported together and nothing is written; importing
under an existing name needs --replace. See docs/import-your-data.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from precompute.core.catalog import stored_names
from precompute.core.errors import UserError
from precompute.core.options import REQUIRED, option
from precompute.core.store import Store
from precompute.datasets.importers.brainio import import_brainio
from precompute.datasets.importers.folder import import_folder
from precompute.datasets.importers.hvm_hdf5 import import_hvm_hdf5
from precompute.datasets.importers.selection import Selection, build_selection
from precompute.datasets.tables import DatasetTables
from precompute.datasets.writer import write_dataset

FORMATS = ("brainio", "hvm-hdf5", "folder")
#: the input options each format needs
NEEDS = {"brainio": ("assembly", "stimuli", "images"), "hvm-hdf5": ("path",), "folder": ("path",)}


@dataclass(frozen=True)
class ImportRequest:
    """The options of `datasets import` (a batch file's [[import]] keys are the same names)."""

    name: str
    format: str = option(REQUIRED, choices=FORMATS, help="input format")
    assembly: Path | None = option(help="brainio: the assembly .nc file")
    stimuli: Path | None = option(help="brainio: the stimulus set CSV")
    images: Path | None = option(help="brainio: the stimulus set ZIP of images")
    path: Path | None = option(help="hvm-hdf5: the .hdf5 file; folder: the folder")
    variation: str | None = option(help="keep these variation levels, e.g. 6 or 0,3")
    time_bin: str | None = option(help="average the time bins inside START-END ms, e.g. 70-170")
    exclude_sites: tuple[str, ...] | None = option(help="site ids or globs to leave out, or files of ids")
    region: str | None = option(help="keep only these regions, e.g. V4,IT")
    preset: str | None = option(choices=("majajhong2015",), help="Brain-Score's selection for the seed paper")
    drop_bad_sites: bool = option(False, help="drop (and list) sites with NaN/infinite or constant responses")
    replace: bool = option(False, help="overwrite a dataset of the same name and its results")
    title: str | None = option(help="dataset title (default: from the input)")
    visual_degrees: float | None = option(help="stimulus width in degrees of visual angle (default 8)")

    def check(self) -> Selection:
        """The Selection, or a UserError naming every problem of the options (a selection that does not
        parse, missing input options), checked without reading the recordings."""
        problems, selection = [], None
        if self.format not in FORMATS:
            problems.append(f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}")
        try:
            selection = build_selection(
                preset=self.preset,
                variation=self.variation,
                time_bin=self.time_bin,
                exclude_sites=self.exclude_sites,
                region=self.region,
            )
        except UserError as exc:
            problems.append(str(exc))
        missing = [f"--{n.replace('_', '-')}" for n in NEEDS.get(self.format, ()) if getattr(self, n) is None]
        if missing:
            problems.append(
                f"--format {self.format} needs {' and '.join(missing)}; see "
                "`python -m precompute datasets import --help`"
            )
        if problems:
            raise UserError("; ".join(problems))
        return selection

    def read(self) -> DatasetTables:
        """Check the options and run the format's importer; DatasetTables or a UserError."""
        selection = self.check()
        if self.format == "brainio":
            tables = import_brainio(
                self.assembly, self.stimuli, self.images, selection, drop_bad_sites=self.drop_bad_sites
            )
        elif self.format == "hvm-hdf5":
            tables = import_hvm_hdf5(self.path, selection, drop_bad_sites=self.drop_bad_sites)
        else:
            tables = import_folder(self.path, selection, drop_bad_sites=self.drop_bad_sites)
        if self.title:
            tables.info["title"] = self.title
        if self.visual_degrees is not None:
            tables.info["visual_degrees"] = self.visual_degrees
        return tables


def import_dataset(store: Store, request: ImportRequest) -> DatasetTables:
    """Import, validate (refusing with every problem), then write in one transaction and publish. An
    existing name without `replace` is refused before the (long) read; the writer checks again."""
    if not request.replace and request.name in stored_names(store)[0]:
        raise UserError(
            f"a dataset named {request.name!r} already exists; pass --replace to overwrite it (this "
            "removes every result derived from it) or choose another --name"
        )
    tables = request.read()
    write_dataset(store, request.name, tables, replace=request.replace)
    return tables
