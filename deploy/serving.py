"""Serving a Unitscope data folder locally under gunicorn on loopback (for the load, swap and fault checks),
and publishing a variant build into it while it serves."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from deploy.dash_protocol import (  # noqa: F401 - re-exported: tests and benchmarks drive sites with them
    PAGE_PARAMS,
    ROUTER_OUTPUT,
    Callback,
    DashSite,
    Transport,
    hrefs,
    parse_outputs,
    walk_components,
)

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_locally(
    env: dict[str, str],
    *,
    port: int | None = None,
    python: str | None = None,
    ready_timeout_s: float = 120.0,
    log_path: Path | None = None,
) -> Iterator[str]:
    """Run the app container's entry point (deploy/app.sh -> gunicorn) on loopback; yield its base URL.

    `env` is added to this process's environment (UNITSCOPE_DATA, GUNICORN_WORKERS, auth, ...). Waits
    until `/health` answers 200, and stops gunicorn (SIGTERM, then SIGKILL) on exit.
    """
    import requests

    port = port or free_port()
    full_env = {
        **os.environ,
        "UNITSCOPE_HOST": "127.0.0.1",
        "UNITSCOPE_PORT": str(port),
        "PYTHON": python or sys.executable,
        "GUNICORN_ACCESSLOG": "",
        **env,
    }
    log_file = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 closed below
    proc = subprocess.Popen(
        ["bash", str(PROJECT_ROOT / "deploy" / "app.sh")],
        cwd=PROJECT_ROOT,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited with {proc.returncode} before answering /health")
            try:
                if requests.get(url + "/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not answer /health within {ready_timeout_s:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if log_path:
            log_file.close()


def publish_variant(store, n: int) -> str:
    """Publish a new build whose dataset titles read `variant <n>` through the real writer; return its build id.

    What precompute does on every step (one transaction, then an atomic replace of the served file), with
    a visible difference, so a check can tell which build a response came from.
    """
    import duckdb

    with store.step(f"deploy-check-variant-{n}", record=False) as con:
        con.execute("UPDATE datasets SET title = ?", [f"variant {n}"])
    con = duckdb.connect(str(store.served_path), read_only=True)
    try:
        return con.execute("SELECT value FROM build_info WHERE key = 'build_id'").fetchone()[0]
    finally:
        con.close()
