"""Fuzzed URL parameters, callback inputs and export requests against the app in-process: no 500s, and
no file outside the app's own code, assets and database is opened (Python audit hook, plus a canary
file that path-like and SQL-like values point at and that must never be read or echoed).

Short version of benchmarks/bench_faults.py's fuzz section (300 requests here).
"""

from __future__ import annotations

import importlib
import os
import random
import re
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from deploy.dash_protocol import DashSite
from deploy.fuzz import export_names_from, fuzz_cases, run_fuzz
from deploy.loadcheck import FlaskTransport

pytestmark = pytest.mark.slow

_WATCH = {"active": False, "opened": [], "lock": threading.Lock()}


def _audit(event: str, args: tuple) -> None:
    if _WATCH["active"] and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        with _WATCH["lock"]:
            _WATCH["opened"].append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # hooks cannot be removed: it records only while a test turns it on


def allowed_roots(db: Path) -> list[str]:
    """What serving may open: the interpreter and its packages, the project's code and assets, the database
    folder, and the kernel's per-process files."""
    import dash

    roots = {
        sys.prefix,
        sys.base_prefix,
        os.path.dirname(os.__file__),
        str(Path(dash.__file__).parents[1]),
        str(Path(__file__).resolve().parents[2]),
        str(db.parent),
        "/proc/",
        "/sys/",
        "/dev/",
        "/etc/ssl",
        "/usr/share/zoneinfo",
        "/etc/localtime",
    }
    return sorted(roots)


@pytest.fixture
def app_server(results_env, monkeypatch):
    return importlib.import_module("app").server


def test_fuzzed_requests(app_server, results_env, tmp_path):
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    marker = b"UNITSCOPE-CANARY-7f3a9c"
    secret.write_bytes(marker + b"\n")
    transport = FlaskTransport(app_server)
    site = DashSite(transport)
    exports = export_names_from(site, transport)
    assert {"sites-scatter", "dataset-correlations", "compare-pair"} <= set(exports)
    cases = fuzz_cases(site, exports, random.Random(9), 300, secret_path=str(secret))
    roots = allowed_roots(results_env.served_path)
    _WATCH["opened"].clear()
    _WATCH["active"] = True
    try:
        failures = run_fuzz(transport, cases, forbidden=[marker, b"root:x:0:0"])
    finally:
        _WATCH["active"] = False
    leaks = [f for f in failures if "forbidden content" in f[2]]
    assert not leaks, leaks[:5]
    # URL parameters (the page router's layout(**query)), exports, images, static routes and hand-crafted
    # callback payloads (values no control offers: the app's on_error leaves the outputs as they are):
    # never a 500.
    print(f"\nfuzz: {len(cases)} requests")
    assert not failures, failures[:5]
    opened = sorted(set(_WATCH["opened"]))
    assert str(secret) not in opened
    # kaleido (figure exports) writes its page into a fresh temporary folder: <tmp>/tmpXXXX/index.html
    kaleido_page = re.compile(re.escape(tempfile.gettempdir()) + r"/tmp[^/]+/index\.html$")
    outside = [
        p for p in opened if not any(os.path.abspath(p).startswith(r) for r in roots) and not kaleido_page.match(p)
    ]
    assert not outside, outside[:10]


def test_unknown_bundle_is_a_404(app_server):
    """Dash raises DependencyException for an unknown `/_dash-component-suites/` path (it reads nothing: the
    paths are an allowlist); the app answers 404, not 500."""
    status = app_server.test_client().get("/_dash-component-suites/dash/../../../../etc/passwd").status_code
    assert status == 404
