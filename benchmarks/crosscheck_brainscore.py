"""Cross-check Unitscope's held-out scores and ceilings against Brain-Score's own code, and print the agreement.

    .venv/bin/python benchmarks/crosscheck_brainscore.py [--db data/unitscope.duckdb] [--dataset synthetic-hvm]
                                                         [--model efficientnet-lite0] [--candidates-per-site 5]

What it does:
1. builds (or reuses) a scratch virtual environment with `brainscore-vision` 2.4 outside the clone
   (~/.cache/unitscope/brainscore-venv, or --venv; about 2 minutes and 6.5 GB the first time: it pulls torch);
   the test suite never needs it;
2. exports from the demo database the trial-averaged responses, the single trials, each stimulus's object, and
   the candidate units' activations: every unit a site chose on the matching run's training sets
   (split_matches) plus each site's top `--candidates-per-site` units on all stimuli (matches);
3. runs Brain-Score's `neuron_to_neuron` metric (benchmarks/crosscheck_brainscore_worker.py, inside that
   environment) (a) on Unitscope's own training sets, folds 0-4 (split-half) and folds 0-8 (n2n), and (b) with
   Brain-Score's default splits (10 x StratifiedShuffleSplit 90/10 on object_name, random_state 1), and its
   InternalConsistency ceiling and ceiled score;
4. prints, per region: per-site agreement of the held-out r on the same splits (max |difference|; Unitscope's
   chosen unit is the best over ALL units on the training set, so it is among the candidates and Brain-Score's
   argmax over them must pick it), the medians side by side (Unitscope's stored score vs Brain-Score's on its
   own splits), the consistencies and the ceiled scores.

The printed table goes in docs/validation.md. Exit status 1 when the same-splits agreement is worse than 1e-6.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORKER = ROOT / "benchmarks" / "crosscheck_brainscore_worker.py"
DEFAULT_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "unitscope" / "brainscore-venv"
BRAINSCORE = "brainscore-vision==2.4.*"


def ensure_venv(venv: Path) -> Path:
    """The scratch environment's python, built when missing (brainscore-vision and what it pulls)."""
    python = venv / "bin" / "python"
    ready = venv / ".unitscope-brainscore-ready"
    if ready.exists():
        return python
    print(f"[crosscheck] building {venv} with {BRAINSCORE} (a few minutes, once)", flush=True)
    if not python.exists():
        subprocess.run(
            [sys.executable if sys.version_info[:2] == (3, 11) else "python3.11", "-m", "venv", str(venv)], check=True
        )
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-U", "pip", "setuptools", "wheel"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", BRAINSCORE], check=True)
    ready.touch()
    return python


def export(db: Path, dataset: str, model: str, per_site: int, out: Path) -> dict:
    """Write the worker's input (npz) and return Unitscope's own numbers to compare with."""
    import duckdb

    from precompute.analyses.context import AnalysisContext
    from precompute.datasets.folds import N2N_TRAIN_FOLDS, SPLIT_HALF_TRAIN_FOLDS

    con = duckdb.connect(str(db), read_only=True)
    try:
        ctx = AnalysisContext(con=con, store=None, dataset=dataset, model=model)
        sites = ctx.sites().reset_index(drop=True)
        responses = ctx.responses()
        trials = ctx.trials()
        objects = [
            o for (o,) in con.execute("SELECT object FROM stimuli WHERE dataset = ? ORDER BY idx", [dataset]).fetchall()
        ]
        folds = ctx.folds()
        chosen = {t: ctx.split_units(t) for t in (SPLIT_HALF_TRAIN_FOLDS, N2N_TRAIN_FOLDS)}
        top = ctx.matches()
        top = top[top["rank"] <= per_site]
        units = {u for us in chosen.values() for u in us if u is not None}
        units |= set(top[["layer_idx", "channel", "y", "x"]].astype(int).itertuples(index=False, name=None))
        units = sorted(units)
        values = ctx.unit_values(units).astype(np.float32)
        scores = con.execute(
            "SELECT region, metric, value, ci_low, ci_high FROM scores WHERE dataset = ? AND "
            "model = ? AND metric IN ('heldout_split_half', 'heldout_n2n', 'consistency', "
            "'brainscore_ceiled')",
            [dataset, model],
        ).df()
        site_scores = con.execute(
            "SELECT site_id, metric, value FROM site_scores WHERE dataset = ? AND model = ? "
            "AND metric IN ('heldout_split_half', 'heldout_n2n')",
            [dataset, model],
        ).df()
    finally:
        con.close()
    masks = np.stack([folds < SPLIT_HALF_TRAIN_FOLDS, folds < N2N_TRAIN_FOLDS])
    arrays = dict(
        responses=responses,
        site_ids=np.array(sites["site_id"], dtype=str),
        regions=np.array(sites["region"], dtype=str),
        stimulus_ids=np.array(ctx.stimulus_ids(), dtype=str),
        objects=np.array(objects, dtype=str),
        candidates=values,
        candidate_keys=np.array([",".join(map(str, u)) for u in units], dtype=str),
        train_masks=masks,
    )
    if trials is not None:
        arrays["trials"] = trials
    np.savez(out, **arrays)
    return {
        "sites": sites,
        "scores": scores,
        "site_scores": site_scores,
        "n_candidates": len(units),
        "chosen": {t: [None if u is None else ",".join(map(str, u)) for u in us] for t, us in chosen.items()},
    }


def report(ours: dict, theirs: dict) -> int:
    sites = ours["sites"]
    site_scores = ours["site_scores"]
    scores = ours["scores"].set_index(["region", "metric"])
    explicit = theirs["explicit"]
    r_bs = np.array([[np.nan if v is None else v for v in row] for row in explicit["r"]], dtype=np.float64)
    selected = explicit["selected"]
    worst = 0.0
    lines = [
        "| region | score | Unitscope | Brain-Score, same splits | max abs per-site diff | same unit chosen |",
        "|---|---|---|---|---|---|",
    ]
    for j, (metric, t) in enumerate((("heldout_split_half", 5), ("heldout_n2n", 9))):
        mine = site_scores[site_scores.metric == metric].set_index("site_id")["value"].reindex(sites["site_id"])
        for region in sorted(sites["region"].unique()):
            idx = np.flatnonzero((sites["region"] == region).to_numpy())
            a, b = mine.to_numpy()[idx], r_bs[idx, j]
            both = np.isfinite(a) & np.isfinite(b)
            diff = float(np.max(np.abs(a[both] - b[both]))) if both.any() else float("nan")
            worst = max(worst, diff if np.isfinite(diff) else 0.0)
            same = np.mean([selected[i][j] == ours["chosen"][t][i] for i in idx])
            lines.append(
                f"| {region} | {metric} (folds 0-{t - 1} -> {t}-9) | {np.median(a[both]):.6f} | "
                f"{np.median(b[both]):.6f} | {diff:.1e} | {same:.1%} |"
            )
    lines += [
        "",
        "| region | Unitscope stored score [95% CI] | Brain-Score n2n, its own 10 splits | difference |",
        "|---|---|---|---|",
    ]
    standard = theirs["standard"]["per_region"]
    for region in sorted(standard):
        row = scores.loc[(region, "heldout_n2n")]
        bs = standard[region]["score"]
        lines.append(
            f"| {region} | heldout_n2n {row.value:.4f} [{row.ci_low:.4f}, {row.ci_high:.4f}] | "
            f"{bs:.4f} (error {standard[region]['error']:.4f}) | {row.value - bs:+.4f} |"
        )
    if "internal_consistency" in theirs:
        lines += [
            "",
            "| region | Unitscope consistency | Brain-Score InternalConsistency | Unitscope "
            "brainscore_ceiled | Brain-Score ceiled (r^2 / ceiling), same split | Brain-Score ceiled, its own "
            "splits |",
            "|---|---|---|---|---|---|",
        ]
        ic = theirs["internal_consistency"]["per_region"]
        for region in sorted(ic):
            cons = scores.loc[(region, "consistency")].value
            ceiled = (
                scores.loc[(region, "brainscore_ceiled")].value
                if (region, "brainscore_ceiled") in scores.index
                else float("nan")
            )
            same = explicit["per_region"][region]
            # the explicit run's score averages its two splits; the n2n split alone is the second one
            n2n_score = same["per_split_median"][1]
            bs_same = n2n_score**2 / ic[region]["ceiling"]
            lines.append(
                f"| {region} | {cons:.4f} | {ic[region]['ceiling']:.4f} | {ceiled:.4f} | {bs_same:.4f} | "
                f"{standard[region].get('ceiled', float('nan')):.4f} |"
            )
    print("\n".join(lines))
    print(
        f"\nsame-split per-site agreement: max |difference| {worst:.2e} ({'OK' if worst <= 1e-6 else 'FAILED'}, "
        f"target 1e-6); candidates: {ours['n_candidates']} units"
    )
    return 0 if worst <= 1e-6 else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", type=Path, default=ROOT / "data" / "unitscope.duckdb")
    p.add_argument("--dataset", default="synthetic-hvm")
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--candidates-per-site", type=int, default=5)
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    p.add_argument("--work", type=Path, default=ROOT / "data" / "cache" / "crosscheck")
    args = p.parse_args(argv)
    if not args.db.exists():
        print(f"no database at {args.db}: build the demo first (./scripts/up.sh, or python -m precompute demo)")
        return 2
    python = ensure_venv(args.venv)
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    inp, out = args.work / "input.npz", args.work / "brainscore.json"
    ours = export(args.db, args.dataset, args.model, args.candidates_per_site, inp)
    print(
        f"[crosscheck] exported {len(ours['sites'])} sites and {ours['n_candidates']} candidate units in "
        f"{time.perf_counter() - t0:.1f} s; running Brain-Score's metrics",
        flush=True,
    )
    t1 = time.perf_counter()
    subprocess.run(
        [str(python), str(WORKER), str(inp), str(out), "--quiet"],
        check=True,
        env={**os.environ, "BS_INSTALL_DEPENDENCIES": "no"},
    )
    print(f"[crosscheck] Brain-Score took {time.perf_counter() - t1:.0f} s\n", flush=True)
    return report(ours, json.loads(out.read_text()))


if __name__ == "__main__":
    sys.exit(main())
