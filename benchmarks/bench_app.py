"""Server-side latency of every page's callbacks on a demo database, cold and cached.

    .venv/bin/python benchmarks/bench_app.py [--db data/unitscope.duckdb] [--repeats 10]

For each page it calls the same functions the Dash callbacks run (layout, then each figure callback),
with the app's FileSystemCache on: "cold" clears the cache before every call (each call queries DuckDB
and builds its figure), "cached" repeats the call with the cache warm. Prints p50 and p95 in ms per
page and the targets (p95 <= 150 ms cached, <= 1 s cold). Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def scenarios(dataset: str, model: str, sites_v4: list[str], sites_it: list[str]):
    """page -> list of zero-argument calls, each one callback (or layout) as the browser triggers it."""
    p = {
        name: importlib.import_module(f"pages.{name}")
        for name in (
            "overview",
            "dataset",
            "sites",
            "layers",
            "runnerups",
            "featuremaps",
            "controls",
            "decoding",
            "compare",
            "unit",
        )
    }
    from backend import data

    layer = data.default_layer(dataset, model, "V4")
    site_calls = []
    for s in sites_v4[:5] + sites_it[:5]:
        region = "V4" if s in sites_v4 else "IT"
        site_calls += [
            lambda s=s, region=region: p["sites"].update_site(s, dataset, model, region),
            lambda s=s, region=region: p["sites"].update_scatter(s, 1, dataset, model, region),
        ]
    best = data.best_matches(dataset, model)
    unit_calls = []
    for s in sites_v4[:3] + sites_it[:3]:  # each site's best unit, as a link from the Sites page opens it
        row = best.set_index("site_id").loc[s]
        region = "V4" if s in sites_v4 else "IT"
        query = {"layer_idx": int(row.layer_idx), "channel": int(row.channel), "y": int(row.y), "x": int(row.x)}
        unit_calls += [
            lambda q=query, region=region, s=s: p["unit"].layout(
                dataset=dataset, model=model, region=region, site=s, **q
            ),
            lambda q=query, region=region: p["unit"].update_unit(q, dataset, model, region),
            lambda q=query, region=region, s=s: p["unit"].update_scatter(s, q, dataset, model, region),
        ]
    return {
        "overview": [
            lambda: p["overview"].layout(dataset=dataset),
            lambda: p["overview"].update_metric("neural_correlation", dataset),
            lambda: p["overview"].update_model(model, dataset),
        ],
        "dataset": [
            lambda: p["dataset"].layout(dataset=dataset),
            lambda: p["dataset"].gallery_view(dataset, "Cars", "__all__", 1),
            lambda: p["dataset"].update_correlations(dataset, "IT"),
            lambda: p["dataset"].update_rf_map(dataset, sites_v4[0]),
        ],
        "sites": [lambda: p["sites"].layout(dataset=dataset, model=model), *site_calls],
        "layers": [
            lambda: p["layers"].layout(dataset=dataset, model=model),
            lambda: p["layers"].update_layers("V4", dataset, model),
            lambda: p["layers"].update_layers("IT", dataset, model),
        ],
        "runner-ups": [
            lambda: p["runnerups"].update_heatmap("V4", dataset, model),
            lambda: p["runnerups"].update_heatmap("IT", dataset, model),
        ],
        "feature-maps": [
            lambda: p["featuremaps"].layout(dataset=dataset, model=model),
            lambda: p["featuremaps"].update_featuremaps("1", dataset, model, "V4", layer),
            lambda: p["featuremaps"].update_featuremaps("all", dataset, model, "V4", layer),
        ],
        "controls": [lambda: p["controls"].update_controls("V4", dataset)],
        "decoding": [lambda: p["decoding"].update_decoding("in_sample", "matched-neural", dataset, model, "IT")],
        "compare": [lambda: p["compare"].update_compare(model, model, sites_it[0], "IT", dataset)],
        "unit": unit_calls,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=None, help="demo database (default: the configured one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="efficientnet-lite0")
    args = parser.parse_args()
    if args.db:
        os.environ["UNITSCOPE_DB"] = str(args.db.resolve())
    os.environ["UNITSCOPE_CACHE"] = "filesystem"
    os.environ["UNITSCOPE_CACHE_DIR"] = tempfile.mkdtemp(prefix="unitscope-bench-cache-")
    os.environ.setdefault("UNITSCOPE_LOG_LEVEL", "WARNING")
    importlib.import_module("app")
    from backend import data
    from backend.cache import cache

    dataset = data.datasets()["dataset"].iloc[0]
    sites = data.sites(dataset)
    calls = scenarios(
        dataset,
        args.model,
        sites[sites.region == "V4"]["site_id"].tolist(),
        sites[sites.region == "IT"]["site_id"].tolist(),
    )
    app = importlib.import_module("app").server
    print(f"database {data.database().path}, dataset {dataset}, model {args.model}, repeats {args.repeats}")
    print(f"{'page':<14} {'calls':>5} {'cold p50':>9} {'cold p95':>9} {'cached p50':>11} {'cached p95':>11}")
    worst_cold, worst_cached = 0.0, 0.0
    for page, fns in calls.items():
        cold, warm = [], []
        for _ in range(args.repeats):
            for fn in fns:
                with app.app_context():
                    cache.clear()
                t0 = time.perf_counter()
                fn()
                cold.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                fn()
                warm.append(time.perf_counter() - t0)
        c50, c95 = np.percentile(cold, [50, 95]) * 1000
        w50, w95 = np.percentile(warm, [50, 95]) * 1000
        worst_cold, worst_cached = max(worst_cold, c95), max(worst_cached, w95)
        print(f"{page:<14} {len(fns):>5} {c50:>8.0f}ms {c95:>8.0f}ms {w50:>10.0f}ms {w95:>10.0f}ms")
    print(f"worst p95: cold {worst_cold:.0f} ms (target <= 1000), cached {worst_cached:.0f} ms (target <= 150)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
