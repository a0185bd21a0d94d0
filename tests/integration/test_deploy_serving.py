"""The app as the container runs it (deploy/app.sh -> gunicorn, 2 workers x 4 threads) on loopback:
access control on every route, simulated users browsing, and the served file replaced while they do.

Short versions of benchmarks/bench_load.py and bench_faults.py (which print the full figures).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time

import pytest
import requests

from deploy.dash_protocol import DashSite
from deploy.loadcheck import HttpTransport, Recorder, User, run_load
from deploy.serving import publish_variant, serve_locally
from precompute.core.store import Store

pytestmark = pytest.mark.slow

AUTH = ("lab", "correct horse")


@pytest.fixture(scope="module")
def served(_templates, tmp_path_factory):
    """gunicorn serving a copy of the toy-results database, with basic auth and a shared file cache."""
    data = tmp_path_factory.mktemp("deploy-data")
    shutil.copyfile(_templates["results"], data / "unitscope.duckdb")
    env = {
        "UNITSCOPE_DATA": str(data),
        "UNITSCOPE_DB": str(data / "unitscope.duckdb"),
        "UNITSCOPE_CACHE": "filesystem",
        "UNITSCOPE_CACHE_DIR": str(data / "cache" / "app"),
        "UNITSCOPE_AUTH_USER": AUTH[0],
        "UNITSCOPE_AUTH_PASSWORD": AUTH[1],
        "UNITSCOPE_AUTH_TOKEN": "",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "4",
        "UNITSCOPE_LOG_LEVEL": "WARNING",
    }
    with serve_locally(env, log_path=data / "gunicorn.log") as url:
        yield url, Store(data / "unitscope.duckdb")


def test_every_route_needs_credentials_but_health(served):
    url, _ = served
    s = requests.Session()
    s.auth = AUTH
    index = s.get(url + "/sites?model=toy2").text
    bundle = re.search(r'src="(/_dash-component-suites/[^"]+)"', index).group(1)
    cb = {
        "output": "overview-nav.href",
        "outputs": {"id": "overview-nav", "property": "href"},
        "inputs": [{"id": "overview-dataset", "property": "value", "value": "mini"}],
        "changedPropIds": [],
    }
    routes = [
        ("GET", "/"),
        ("GET", "/sites?model=toy2"),
        ("GET", "/_dash-layout"),
        ("GET", "/_dash-dependencies"),
        ("POST", "/_dash-update-component"),
        ("GET", "/export/sites-scatter.csv?dataset=mini"),
        ("GET", "/stimulus/mini/stim000.png"),
        ("GET", "/assets/vendor/bootstrap.min.css"),
        ("GET", bundle),
        ("GET", "/_favicon.ico"),
        ("GET", "/_reload-hash"),
        ("GET", "/no-such-page"),
    ]
    for method, path in routes:
        kwargs = {"json": cb} if method == "POST" else {}
        anonymous = requests.request(method, url + path, timeout=30, **kwargs)
        assert anonymous.status_code == 401, (method, path, anonymous.status_code)
        wrong = requests.request(method, url + path, timeout=30, auth=(AUTH[0], "wrong"), **kwargs)
        assert wrong.status_code == 401, (method, path)
        if path not in ("/no-such-page", "/_reload-hash"):
            assert s.request(method, url + path, timeout=30, **kwargs).status_code == 200, (method, path)
    health = requests.get(url + "/health", timeout=30)
    assert health.status_code == 200 and health.json()["rows"]["sites"] == 9


def test_simulated_users_short(served):
    """8 users each browse 6 pages with filters, callbacks and exports: no failed request; the figures are
    printed (a fixed workload: the verdict never depends on how fast this machine is today)."""
    url, _ = served
    rec = run_load(lambda: HttpTransport(url, auth=AUTH), users=8, pages=6, seed=1)
    summary = rec.summary()
    print(
        "\nload (8 users x 6 pages):",
        json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()}),
    )
    assert summary["requests"] > 50
    kinds = {s.kind for s in rec.samples}
    assert {"page", "router", "callback"} <= kinds
    assert {s.target for s in rec.samples if s.kind == "router"} >= {"/", "/sites", "/dataset"}
    errors = rec.errors()
    assert not errors, errors[:5]
    # latency is a benchmark's figure (benchmarks/bench_load.py), not a verdict of a test on a shared machine


# long: one scenario (serve, swap under load, check every answer), read top to bottom
def test_replacing_the_served_file_while_serving(served):
    """Publish 12 builds while 4 users browse: no failed request, no response mixing two builds, and no
    response to a request started after a publish finished shows an older build (the cache is keyed by
    build id). Paced by events, not by the clock: after each publish the test waits (bounded, generously)
    until the Overview watchers have answers to requests started after it."""
    url, store = served
    seen: list[tuple[float, str, int]] = []  # (request start, build id shown, variant shown)
    lock = threading.Lock()
    published: dict[str, tuple[int, float]] = {}
    stop = threading.Event()

    def browse_overview(seed: int) -> None:
        site = DashSite(HttpTransport(url, auth=AUTH))
        started = [0.0]

        def check_overview(path, content):
            if path != "/":
                return
            text = json.dumps(content)
            build = re.search(r'"children": "([0-9a-f]{32})"', text)
            variant = re.search(r"variant (\d+)", text)
            if build:
                with lock:
                    seen.append((started[0], build.group(1), int(variant.group(1)) if variant else 0))

        user = User(HttpTransport(url, auth=AUTH), site, rec, __import__("random").Random(seed), on_page=check_overview)
        while not stop.is_set():
            started[0] = time.monotonic()
            user.open_page("/")

    def answered_after(t: float) -> int:
        with lock:
            return sum(started > t for started, _, _ in seen)

    first = requests.get(url + "/health", timeout=30).json()["build_id"]
    published[first] = (0, 0.0)
    rec = Recorder()
    watchers = [threading.Thread(target=browse_overview, args=(7 + i,), daemon=True) for i in range(2)]
    for th in watchers:
        th.start()
    load = threading.Thread(
        target=lambda: rec.samples.extend(
            run_load(lambda: HttpTransport(url, auth=AUTH), users=2, pages=4, seed=2).samples
        ),
        daemon=True,
    )
    load.start()
    for n in range(1, 13):
        build = publish_variant(store, n)
        done_at = time.monotonic()
        published[build] = (n, done_at)
        deadline = done_at + 120  # bounds the wait only: a healthy server answers in well under a second
        while answered_after(done_at) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert answered_after(done_at) >= 2, f"no Overview answers within 120 s of publishing build {n}"
    load.join(600)
    stop.set()
    for th in watchers:
        th.join(120)
    errors = rec.errors()
    assert not errors, errors[:5]
    assert len(seen) >= 24
    for started, build, variant in seen:
        assert build in published, f"unknown build {build}"
        assert published[build][0] == variant, f"one response mixed build {build} with variant {variant}"
        # a request started after build k's publish finished shows build k or a later one
        newest_before = max((k for k, t in published.values() if t < started), default=0)
        assert published[build][0] >= newest_before, (
            f"a request started after build {newest_before} was published showed build {published[build][0]}"
        )
    final = requests.get(url + "/health", timeout=30).json()["build_id"]
    assert published[final][0] == 12
    # after the last publish, every worker and thread serves the last build (no stale cache entry)
    site = DashSite(HttpTransport(url, auth=AUTH))
    shown = []
    for i in range(8):
        User(
            HttpTransport(url, auth=AUTH),
            site,
            Recorder(),
            __import__("random").Random(i),
            on_page=lambda p, c: shown.append(json.dumps(c)),
        ).open_page("/")
    assert all("variant 12" in text and final in text for text in shown)


def test_compare_export_of_a_model_against_itself(served):
    """Exporting the compare figure's data as Parquet for a model against itself works (it once answered 500)."""
    url, _ = served
    resp = requests.get(url + "/export/compare-pair.parquet?dataset=mini&region=IT&a=toy&b=toy", auth=AUTH, timeout=60)
    assert resp.status_code == 200
