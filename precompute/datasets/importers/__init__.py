"""Importers of real recordings: BrainIO / Brain-Score, the HvM HDF5 release, and a plain folder.

Every importer returns a DatasetTables (precompute/datasets/tables.py) or raises a UserError naming
every problem it found (validation.py); selection options are shared by all formats (selection.py).
`python -m precompute datasets import --help` is the command-line entry (cli.py).
"""

from __future__ import annotations

from precompute.datasets.importers.brainio import import_brainio, read_assembly
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
