"""Gunicorn settings for `gunicorn -c deploy/gunicorn_conf.py app:server` (the app container's command).

Everything comes from the environment, so the compose file and `.env` tune it without a rebuild:

    UNITSCOPE_HOST / UNITSCOPE_PORT   bind address (default 0.0.0.0:8050 in the image, 127.0.0.1:8050 outside)
    GUNICORN_WORKERS                  worker processes (default 2; about one per core)
    GUNICORN_THREADS                  threads per worker (default 4; requests wait on DuckDB and kaleido)
    GUNICORN_TIMEOUT                  seconds before a stuck worker is restarted (default 120: PDF exports)
    GUNICORN_MAX_REQUESTS             recycle a worker after this many requests (default 2000, 0 = never)
    GUNICORN_FORWARDED_ALLOW_IPS      proxies trusted for X-Forwarded-* (default 127.0.0.1; nginx in front)

Workers are threaded (gthread): each thread gets its own read-only DuckDB connection (backend/db.py).
The app is not preloaded: DuckDB connections must not cross a fork, so each worker imports the app itself.
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not an integer") from None


bind = f"{os.environ.get('UNITSCOPE_HOST', '127.0.0.1')}:{_int('UNITSCOPE_PORT', 8050)}"
workers = max(1, _int("GUNICORN_WORKERS", 2))
threads = max(1, _int("GUNICORN_THREADS", 4))
worker_class = "gthread"
timeout = _int("GUNICORN_TIMEOUT", 120)
graceful_timeout = 30
keepalive = 5
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = max_requests // 10
preload_app = False
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("UNITSCOPE_LOG_LEVEL", "info").lower()
# client, request line, status, bytes, seconds
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'


def post_worker_init(worker) -> None:
    """Make sure access control is on in every worker, whether or not app.py installs it (idempotent)."""
    from backend.config import get_settings
    from routes import install_auth

    install_auth(worker.wsgi, get_settings())
