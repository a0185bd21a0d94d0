"""Time and peak memory of importing a full-size MajajHong2015-shaped BrainIO assembly (not a test).

    .venv/bin/python benchmarks/bench_import.py [--workdir DIR] [--keep]

Writes a 296 x 268,800 x 1 float32 assembly (random values; V0 x 28, V3 x 51, V6 x 47 repetitions of the
5,760 HvM stimuli, shuffled, dims (neuroid, presentation, time_bin)) with a stimulus CSV and a ZIP of
small images, then imports it in a fresh child process (so its peak RSS is the import's alone), once
with everything and once with the majajhong2015 preset. Prints seconds and peak RSS of each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REPS = {0: 28, 3: 51, 6: 47}


def make_inputs(work: Path) -> tuple[Path, Path, Path]:
    import pandas as pd
    import xarray as xr

    sys.path.insert(0, str(ROOT))
    from tests.unit.test_import_support import majajhong_sites, png_bytes

    rng = np.random.default_rng(0)
    levels = np.repeat([0, 3, 6], [640, 2560, 2560])
    ids = np.array([f"{i:040x}" for i in range(len(levels))], dtype=object)
    files = [f"img_{i:05d}.png" for i in range(len(levels))]
    pd.DataFrame(
        {"image_id": ids, "image_file_name": files, "variation": levels, "category_name": "c", "object_name": "o"}
    ).to_csv(work / "image_bench.csv", index=False)
    with zipfile.ZipFile(work / "image_bench.zip", "w") as z:
        tiny = png_bytes(rng, (8, 8))
        for name in files:
            z.writestr(name, tiny)
    reps = np.array([REPS[v] for v in levels])
    pres_stim = np.repeat(np.arange(len(ids)), reps)
    pres_rep = np.concatenate([np.arange(r) for r in reps])
    order = rng.permutation(len(pres_stim))
    pres_stim, pres_rep = pres_stim[order], pres_rep[order]
    sites = majajhong_sites()
    assert len(pres_stim) == 268_800 and len(sites) == 296
    values = rng.standard_normal((296, len(pres_stim), 1), dtype=np.float32)
    coords = {
        "image_id": ("presentation", ids[pres_stim]),
        "repetition": ("presentation", pres_rep),
        "time_bin_start": ("time_bin", [70]),
        "time_bin_end": ("time_bin", [170]),
    }
    for col in sites.columns:
        coords[col] = ("neuroid", sites[col].to_numpy())
    xr.DataArray(values, dims=("neuroid", "presentation", "time_bin"), coords=coords).to_netcdf(
        work / "assy_bench.nc", engine="h5netcdf"
    )
    return work / "assy_bench.nc", work / "image_bench.csv", work / "image_bench.zip"


CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from precompute.datasets.importers.brainio import import_brainio
from precompute.datasets.importers.selection import build_selection
t0 = time.perf_counter()
t = import_brainio({nc!r}, {csv!r}, {zip!r}, build_selection(preset={preset!r}))
print(json.dumps({{"seconds": time.perf_counter() - t0, "sites": len(t.sites), "stimuli": len(t.stimuli),
                  "trials_shape": list(t.trials.shape),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_import_"))
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "assy_bench.nc").exists():
        t0 = time.perf_counter()
        make_inputs(work)
        print(
            f"wrote inputs in {time.perf_counter() - t0:.1f} s to {work} "
            f"(assembly {(work / 'assy_bench.nc').stat().st_size / 2**20:.0f} MiB)"
        )
    nc, csv, zp = work / "assy_bench.nc", work / "image_bench.csv", work / "image_bench.zip"
    for preset in (None, "majajhong2015"):
        code = CHILD.format(root=str(ROOT), nc=str(nc), csv=str(csv), zip=str(zp), preset=preset)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"preset={preset or 'none':<14} {res['seconds']:6.1f} s  peak RSS {res['peak_rss_mb']:7.0f} MB  "
            f"-> {res['sites']} sites x {res['stimuli']} stimuli, trials {tuple(res['trials_shape'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
