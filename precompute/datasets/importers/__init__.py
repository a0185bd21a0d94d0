"""Importers of real recordings: BrainIO / Brain-Score, the HvM HDF5 release, and a plain folder.

Every importer returns a DatasetTables (precompute/datasets/tables.py) or raises a UserError naming
every problem it found (validation.py); selection options are shared by all formats (selection.py).
`python -m precompute datasets import --help` is the command-line entry (precompute/cli/datasets.py).

Modules:
  request.py           ImportRequest: one import, as the command line and a batch file give it
  brainio.py           import_brainio: the stimulus set (CSV + ZIP of images) and the dataset's assembly
  brainio_assembly.py  read_assembly: the selected trials of a BrainIO NetCDF assembly, streamed in chunks
  hvm_hdf5.py          import_hvm_hdf5: the original DiCarlo release
  folder.py            import_folder: a plain folder of CSV / NumPy files
  selection.py         what to keep at import (variations, time bin, sites, regions, presets)
  validation.py        Report: collect every problem, then refuse once
  common.py            shared pieces: images to PNG, metadata columns to the schema, the final assembly
"""

from __future__ import annotations

from precompute.datasets.importers.brainio import import_brainio
from precompute.datasets.importers.brainio_assembly import read_assembly
from precompute.datasets.importers.folder import import_folder
from precompute.datasets.importers.hvm_hdf5 import import_hvm_hdf5
from precompute.datasets.importers.selection import PRESETS, Selection, build_selection
from precompute.datasets.importers.validation import ImportRefusedError, Problem

FORMATS = ("brainio", "hvm-hdf5", "folder")

__all__ = [
    "FORMATS",
    "PRESETS",
    "ImportRefusedError",
    "Problem",
    "Selection",
    "build_selection",
    "import_brainio",
    "import_folder",
    "import_hvm_hdf5",
    "read_assembly",
]
