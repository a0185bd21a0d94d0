"""Self-test of benchmarks/crosscheck_brainscore_worker.py against float64 numpy references.

Runs inside the scratch Brain-Score venv (see the worker's docstring):

    ~/.cache/unitscope/brainscore-venv/bin/python benchmarks/crosscheck_brainscore_selftest.py [--keep DIR]

It makes a synthetic data set (20 sites in 2 regions, 200 stimuli in 20 objects, 10 repetitions with some
missing trials, 50 candidate units: noisy copies of sites, an exact duplicate (a tie), a sign-flipped copy,
a constant unit and noise), writes it as the worker's npz input with 12 explicit training masks, runs the
worker (float64 and float32 sources, and once without trials and masks), and checks:

1. explicit masks: per site and split, Brain-Score's held-out r equals "the candidate with the highest
   (signed) Pearson r on the training stimuli, scored by Pearson r on the test stimuli" in float64 numpy,
   and the selected candidates are the same;
2. the same reference on the splits Brain-Score used by default (returned by the worker), and those splits
   equal sklearn's StratifiedShuffleSplit(10, train_size=0.9, random_state=1) on the objects;
3. the region scores equal the mean over splits of the per-split median over sites;
4. internal consistency: per site and split the Spearman-Brown corrected split-half r (halves averaged with
   NaN skipped) on the repetition halves the worker returned (= sklearn ShuffleSplit(10, train_size=0.5,
   random_state=1) over the repetitions), region ceiling = mean over splits of the median over sites;
5. the ceiled score is r**2 / ceiling.
Prints the numbers and exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORKER = HERE / "crosscheck_brainscore_worker.py"
TOL = 1e-6


def make_data(seed=0, n_sites=20, n_objects=20, per_object=10, n_reps=10, n_units=50):
    rng = np.random.default_rng(seed)
    n_stim = n_objects * per_object
    objects = np.repeat([f"obj{k:02d}" for k in range(n_objects)], per_object)
    perm = rng.permutation(n_stim)  # objects interleaved in the stimulus order
    objects = objects[perm]
    stimulus_ids = np.array([f"stim{k:04d}" for k in rng.permutation(10_000)[:n_stim]])  # unsorted ids
    obj_effect = {o: rng.normal(size=n_sites) for o in np.unique(objects)}
    latent = np.stack([obj_effect[o] for o in objects], axis=1) + rng.normal(size=(n_sites, n_stim))
    latent = latent * rng.uniform(0.5, 3, size=(n_sites, 1)) + rng.uniform(0, 5, size=(n_sites, 1))
    noise_sd = rng.uniform(0.5, 3.0, size=(n_sites, 1, 1))
    trials = latent[:, :, None] + noise_sd * rng.normal(size=(n_sites, n_stim, n_reps))
    missing = rng.random(trials.shape) < 0.05
    missing[:, :, 0] = False  # every stimulus keeps at least one trial
    trials[missing] = np.nan
    responses = np.nanmean(trials, axis=2)

    cand = rng.normal(size=(n_units, n_stim))
    for u in range(30):  # noisy copies of sites, at various noise levels
        s = u % n_sites
        cand[u] = 0.7 * latent[s] + rng.uniform(0.3, 4.0) * rng.normal(size=n_stim)
    cand[30] = cand[3]  # exact duplicate of unit 3: a tie, the first (3) must win
    cand[31] = -5.0 * latent[7]  # sign-flipped copy: never chosen by a signed selection
    cand[32] = 1.25  # constant unit: NaN r, skipped
    keys = np.array([f"layer{u % 3}/unit{u:03d}" for u in range(n_units)])
    regions = np.array(["V4"] * (n_sites // 2) + ["IT"] * (n_sites - n_sites // 2))
    site_ids = np.array([f"site{k:02d}" for k in range(n_sites)])

    masks = []
    for _ in range(10):  # 90/10 random splits
        m = np.ones(n_stim, dtype=bool)
        m[rng.choice(n_stim, n_stim // 10, replace=False)] = False
        masks.append(m)
    half = np.zeros(n_stim, dtype=bool)
    half[rng.permutation(n_stim)[: n_stim // 2]] = True
    masks += [half, ~half]  # a split half, both directions
    return dict(
        responses=responses,
        trials=trials,
        site_ids=site_ids,
        regions=regions,
        stimulus_ids=stimulus_ids,
        objects=objects,
        candidates=cand.astype(np.float32),
        candidate_keys=keys,
        train_masks=np.array(masks),
    )


def pearson_rows(x, y):
    """Pearson r of every row of x with y (float64); NaN for constant rows."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x @ y) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y))


def reference_n2n(responses, candidates, masks):
    """(sites, splits) held-out r and selected index: highest signed training r (first on ties, NaN skipped)."""
    cands = candidates.astype(np.float64)
    r = np.full((responses.shape[0], len(masks)), np.nan)
    sel = np.full(r.shape, -1, dtype=int)
    for k, m in enumerate(masks):
        for i, y in enumerate(responses):
            rt = pearson_rows(cands[:, m], y[m])
            j = int(np.nanargmax(rt))
            sel[i, k] = j
            r[i, k] = np.corrcoef(cands[j, ~m], y[~m])[0, 1]
    return r, sel


def reference_consistency(trials, rep_splits):
    out = np.full((trials.shape[0], len(rep_splits)), np.nan)
    for k, sp in enumerate(rep_splits):
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            a = np.nanmean(trials[:, :, sp["half1"]], axis=2)
            b = np.nanmean(trials[:, :, sp["half2"]], axis=2)
        for i in range(trials.shape[0]):
            r = np.corrcoef(a[i], b[i])[0, 1]
            out[i, k] = 2 * r / (1 + r)
    return out


def arr(x):
    return np.array([[np.nan if v is None else v for v in row] for row in x], dtype=np.float64)


def run_worker(npz, out, *extra):
    t = time.time()
    subprocess.run([sys.executable, str(WORKER), str(npz), str(out), "--quiet", *extra], check=True)
    return json.loads(Path(out).read_text()), time.time() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", help="folder to keep the npz and json files in")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bs-crosscheck-"))
    work.mkdir(parents=True, exist_ok=True)
    failures = []

    def check(name, ok, detail):
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        if not ok:
            failures.append(name)

    d = make_data()
    npz = work / "in.npz"
    np.savez(npz, **d)
    out, secs = run_worker(npz, work / "out64.json")
    print(f"worker (float64 source): {secs:.1f} s; versions {out['versions']}")
    regions = np.array(out["regions"])
    check("no excluded sites", out["excluded_sites"] == [], str(out["excluded_sites"]))

    # 1. explicit masks
    ref_r, ref_sel = reference_n2n(d["responses"], d["candidates"], d["train_masks"])
    bs_r, bs_sel = arr(out["explicit"]["r"]), np.array(out["explicit"]["selected_index"])
    diff = np.nanmax(np.abs(bs_r - ref_r))
    check(
        "explicit: held-out r = float64 reference",
        diff < TOL and np.isfinite(bs_r).all(),
        f"max |diff| = {diff:.3e} over {bs_r.size} (site, split) pairs",
    )
    check(
        "explicit: same selected candidates",
        np.array_equal(bs_sel, ref_sel),
        f"{int((bs_sel != ref_sel).sum())} differ",
    )
    check(
        "tie: duplicate unit 30 never chosen over unit 3",
        not (bs_sel == 30).any() and (bs_sel == 3).any(),
        f"unit 3 chosen {int((bs_sel == 3).sum())}x, unit 30 {int((bs_sel == 30).sum())}x",
    )
    check("signed: sign-flipped unit 31 never chosen", not (bs_sel == 31).any(), "")
    check("constant unit 32 never chosen", not (bs_sel == 32).any(), "")
    keys = np.array(out["explicit"]["selected"])
    check("selected keys match indices", np.array_equal(keys, d["candidate_keys"][bs_sel]), "")

    # 2. Brain-Score's default splits
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    std_masks = np.array(out["standard"]["splits"]["train_masks"], dtype=bool)
    sk = np.zeros_like(std_masks)
    for k, (tr, _te) in enumerate(
        StratifiedShuffleSplit(n_splits=10, train_size=0.9, random_state=1).split(
            np.zeros(len(d["objects"])), d["objects"]
        )
    ):
        sk[k, tr] = True
    check(
        "standard splits = sklearn StratifiedShuffleSplit(10, .9, random_state=1) on objects",
        np.array_equal(std_masks, sk),
        f"{std_masks.shape}, train sizes {sorted(set(std_masks.sum(1)))}",
    )
    per_obj_test = [len(set(np.unique(d["objects"][~m]))) for m in std_masks]
    print(
        f"     standard splits: {std_masks.shape[0]} splits, test sets cover {min(per_obj_test)}-"
        f"{max(per_obj_test)} of {len(np.unique(d['objects']))} objects"
    )
    ref_r2, ref_sel2 = reference_n2n(d["responses"], d["candidates"], std_masks)
    bs_r2, bs_sel2 = arr(out["standard"]["r"]), np.array(out["standard"]["selected_index"])
    diff2 = np.nanmax(np.abs(bs_r2 - ref_r2))
    check("standard: held-out r = float64 reference", diff2 < TOL, f"max |diff| = {diff2:.3e}")
    check(
        "standard: same selected candidates",
        np.array_equal(bs_sel2, ref_sel2),
        f"{int((bs_sel2 != ref_sel2).sum())} differ",
    )

    # 3. aggregation
    for part, r in (("explicit", ref_r), ("standard", ref_r2)):
        for region, got in out[part]["per_region"].items():
            rr = r[regions == region]
            want = np.mean(np.median(rr, axis=0))
            other = np.median(np.mean(rr, axis=1))
            check(
                f"{part} {region}: score = mean over splits of median over sites",
                abs(got["score"] - want) < TOL,
                f"brainscore {got['score']:.6f}, reference {want:.6f} (median of per-site means: {other:.6f})",
            )

    # 4. internal consistency
    ic = out["internal_consistency"]
    reps = np.arange(d["trials"].shape[2])
    sk_halves = [
        (reps[tr].tolist(), reps[te].tolist())
        for tr, te in ShuffleSplit(n_splits=10, train_size=0.5, random_state=1).split(np.zeros(len(reps)))
    ]
    got_halves = [(s["half1"], s["half2"]) for s in ic["repetition_splits"]]
    check(
        "repetition halves = sklearn ShuffleSplit(10, .5, random_state=1)",
        got_halves == sk_halves,
        f"first: {got_halves[0]}",
    )
    ref_c = reference_consistency(d["trials"], ic["repetition_splits"])
    bs_c = arr(ic["per_site"]["per_split"])
    diffc = np.nanmax(np.abs(bs_c - ref_c))
    check(
        "consistency per site and split = Spearman-Brown split-half reference", diffc < TOL, f"max |diff| = {diffc:.3e}"
    )
    for region, got in ic["per_region"].items():
        want = np.mean(np.median(ref_c[regions == region], axis=0))
        unitscope_like = np.median(np.median(ref_c[regions == region], axis=1))
        check(
            f"ceiling {region} = mean over splits of median over sites",
            abs(got["ceiling"] - want) < TOL,
            f"brainscore {got['ceiling']:.6f}, reference {want:.6f} "
            f"(median over sites of per-site median: {unitscope_like:.6f})",
        )

    # 5. ceiled score
    for region, got in out["standard"]["per_region"].items():
        want = got["score"] ** 2 / got["ceiling"]
        check(
            f"ceiled {region} = r**2 / ceiling",
            abs(got["ceiled"] - want) < 1e-12,
            f"ceiled {got['ceiled']:.6f}; r/ceiling would be {got['score'] / got['ceiling']:.6f}",
        )

    # float32 source: Brain-Score computes the selection r in the activations' dtype
    out32, secs32 = run_worker(npz, work / "out32.json", "--source-dtype", "float32")
    r32, sel32 = arr(out32["explicit"]["r"]), np.array(out32["explicit"]["selected_index"])
    d32 = np.nanmax(np.abs(r32 - ref_r))
    check(
        "float32 source: same selections and r within 1e-6",
        np.array_equal(sel32, ref_sel) and d32 < TOL,
        f"{int((sel32 != ref_sel).sum())} selections differ, max |diff| = {d32:.3e} ({secs32:.1f} s)",
    )

    # optional inputs absent
    lean = {k: v for k, v in d.items() if k not in ("trials", "train_masks")}
    np.savez(work / "lean.npz", **lean)
    out_lean, _ = run_worker(work / "lean.npz", work / "lean.json")
    check(
        "without trials and masks",
        "explicit" not in out_lean
        and "internal_consistency" not in out_lean
        and arr(out_lean["standard"]["r"]).shape == (20, 10)
        and np.nanmax(np.abs(arr(out_lean["standard"]["r"]) - bs_r2)) == 0,
        "standard part only, same r",
    )

    print(f"\n{len(failures)} failed" if failures else "\nall checks passed", f"(files in {work})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
