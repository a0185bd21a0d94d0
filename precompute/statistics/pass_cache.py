"""The disk cache of statistics passes (streaming_pass.py): one .npz file per pass, keyed by what it depends on.

Files live under `<data folder>/cache/stats/` and are named `pass-<digest of (dataset, model)>-<digest of the
key>.npz`, the key being the dataset, the model, the protocol, the inputs' fingerprint and the pass's spec.
Only the latest pass of a (dataset, model) is kept: writing one removes that pair's other files
(`prune_cache`). Files are written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np

from precompute.models.sources import data_dir_of

log = logging.getLogger(__name__)

#: cache/<CACHE_FOLDER>/ under the data folder holds the passes
CACHE_FOLDER = "stats"
#: the names of cache files written before the (dataset, model) prefix (`pass-<24 hex>.npz`)
_LEGACY_NAME = re.compile(r"^pass-[0-9a-f]{24}\.npz$")


def _pair_prefix(dataset: str, model: str) -> str:
    """`pass-<digest of (dataset, model)>-`: the cache files of one (dataset, model) share it."""
    pair = json.dumps([dataset, model]).encode()
    return f"pass-{hashlib.sha256(pair).hexdigest()[:12]}-"


def cache_path(ctx, spec_summary: dict) -> Path | None:
    """The cache file of the pass described by `spec_summary` (PassSpec.summary()) in this context; None
    without a store."""
    if ctx.store is None:
        return None

    key = json.dumps(
        {
            "dataset": ctx.dataset,
            "model": ctx.model,
            "protocol": ctx.protocol,
            "inputs": ctx.inputs_fingerprint(),
            "spec": spec_summary,
        },
        sort_keys=True,
        default=str,
    )
    name = f"{_pair_prefix(ctx.dataset, ctx.model)}{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"
    return data_dir_of(ctx.store) / "cache" / CACHE_FOLDER / name


def write_npz(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` and `meta` (JSON, as the array "meta") to `path`, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
    tmp.replace(path)


def read_npz(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, every other array by name) of a file written by `write_npz`."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return meta, {k: z[k] for k in z.files if k != "meta"}


def prune_cache(path: Path) -> list[Path]:
    """Remove the cached passes that `path` (just written) supersedes; return what was removed.

    Removed: every other file of the same (dataset, model) (another seed, protocol, set of splits or
    earlier inputs: a rerun keys a new file, and only the latest is kept), leftover temporary files of
    that pair (a write killed midway), and files named in the format before the (dataset, model) prefix
    (never read again). Other pairs' files stay."""
    prefix = path.name[: len(_pair_prefix("", ""))]
    removed = []
    for other in path.parent.glob("pass-*"):
        if other == path:
            continue
        if other.name.startswith(prefix) or _LEGACY_NAME.match(other.name):
            try:
                other.unlink()
            except FileNotFoundError:
                continue
            removed.append(other)
    if removed:
        log.info("statistics pass cache: removed %d superseded file(s) beside %s", len(removed), path.name)
    return removed
