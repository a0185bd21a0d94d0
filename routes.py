"""The shell's HTTP routes beside the Dash pages: one build per request, stimulus images, /health, the
figure exports, Dash's unknown-bundle 404 and access control. app.py calls `register_routes` once.

Exports: every view's state lives in its URL, so an export is the page's card rebuilt from the same
query: `/export/<figure>.<format>?<the page's query>`. Pages register a builder per card
(components.exports.register_export); the builder validates its parameters exactly as the page does.
Security: the figure name must be registered and the format is one of five; parameters are passed as
values to the builders (which check them against the database); nothing is read from disk but the
database, and file names are built from a safe alphabet.
"""

from __future__ import annotations

import logging

from dash.exceptions import DependencyException
from flask import Flask, Response, abort, g, jsonify, request

from backend import data, queries
from backend.auth import OPEN_PATHS, REALM, check_config, is_authorized
from backend.config import Settings
from backend.db import DatabaseMissingError
from backend.errors import NotComputedError, NotFoundError
from components.exports import (
    DATA_FORMATS,
    IMAGE_FORMATS,
    MAX_PARAM_LENGTH,
    frame_bytes,
    registered,
    render,
    safe_filename,
)

log = logging.getLogger(__name__)
_AUTH_KEY = "unitscope_auth"


def register_routes(server: Flask, settings: Settings) -> None:
    """Every route and request hook of the app's Flask server (access control last: it goes first in line)."""
    _register_build_pin(server)
    _register_stimuli_and_health(server)
    _register_exports(server)
    server.register_error_handler(DependencyException, _missing_dependency)
    install_auth(server, settings)


def _missing_dependency(_err):
    """Unknown Dash component-suite files are a 404, not a 500 (nothing is read for them)."""
    return "not found\n", 404, {"Content-Type": "text/plain"}


def _register_build_pin(server: Flask) -> None:
    @server.before_request
    def pin_build() -> None:
        """One build per request: every query and cache key of this request uses the same connection."""
        try:
            pin = data.database().pinned()
            pin.__enter__()
        except Exception:  # no or unreadable database: the route itself reports it (404/503)
            return
        g.unitscope_pin = pin

    @server.teardown_request
    def unpin_build(_exc) -> None:
        pin = g.pop("unitscope_pin", None)
        if pin is not None:
            pin.__exit__(None, None, None)


def _register_stimuli_and_health(server: Flask) -> None:
    @server.route("/stimulus/<dataset>/<stimulus_id>.png")
    def stimulus_image(dataset: str, stimulus_id: str) -> Response:
        try:
            png = data.stimulus_png(dataset, stimulus_id)
        except DatabaseMissingError:
            abort(404)
        if png is None:
            abort(404)
        resp = Response(png, mimetype="image/png")
        resp.headers["Cache-Control"] = "private, max-age=3600"
        resp.headers["ETag"] = f'"{data.build_id()}-{stimulus_id}"'
        return resp

    @server.route("/health")
    def health() -> tuple[Response, int]:
        try:
            db = data.database()
            with db.pinned():
                info = queries.build_info(db)
                counts = queries.table_counts(db)
        except DatabaseMissingError:
            return jsonify({"status": "no database", "db": str(data.database().path)}), 503
        except Exception as exc:  # the database exists but cannot be read: report, do not crash
            log.exception("health check failed")
            return jsonify({"status": "unreadable", "error": type(exc).__name__}), 503
        return jsonify(
            {
                "status": "ok",
                "build_id": info.get("build_id"),
                "schema_version": info.get("schema_version"),
                "published_at": info.get("published_at"),
                "rows": counts,
            }
        ), 200


def _message(status: int, text: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")


def _register_exports(server: Flask) -> None:
    @server.route("/export/<name>.<fmt>")
    def export(name: str, fmt: str) -> Response:
        spec = registered().get(name)
        if spec is None or (fmt not in IMAGE_FORMATS and fmt not in DATA_FORMATS):
            return _message(404, "unknown export: pick one from a figure's Export menu")
        if spec.data_only and fmt not in DATA_FORMATS:
            return _message(404, f"{name} is a table: export it as CSV or Parquet")
        params = {}
        for key in spec.params:
            value = request.args.get(key)
            if value is not None and len(value) > MAX_PARAM_LENGTH:
                return _message(400, f"parameter {key} is too long")
            params[key] = value
        try:
            fig, frame = spec.build(**params)
        except DatabaseMissingError:
            return _message(503, "no database yet")
        except NotComputedError as exc:
            return _message(404, f"{exc.what} not computed yet: run {exc.command}")
        except NotFoundError as exc:
            return _message(400, f"cannot export this view: {exc}")
        try:
            body = render(fig, fmt) if fmt in IMAGE_FORMATS else frame_bytes(frame, fmt)
        except Exception:  # an export must never take the server down; say what failed
            log.exception("export %s.%s failed", name, fmt)
            return _message(500, "the export failed on the server; the log has the details")
        resp = Response(body, mimetype=IMAGE_FORMATS.get(fmt) or DATA_FORMATS[fmt])
        resp.headers["Content-Disposition"] = f'attachment; filename="{safe_filename(name, params, fmt)}"'
        return resp


def _challenge() -> Response:
    resp = Response(
        "authentication required: log in with the lab's Unitscope user and password\n",
        status=401,
        mimetype="text/plain",
    )
    resp.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def install_auth(server: Flask, settings: Settings) -> bool:
    """Require credentials on every route but `/health` when Settings configure them (backend/auth.py).

    Returns whether access control is on. Idempotent (a second call on the same server does nothing).
    Raises AuthConfigError for a user without a password or a password without a user.
    """
    if _AUTH_KEY in server.extensions:
        return bool(server.extensions[_AUTH_KEY])
    user, password, token = settings.auth_user, settings.auth_password, settings.auth_token
    check_config(user, password)
    enabled = bool(user or token)
    server.extensions[_AUTH_KEY] = enabled
    if not enabled:
        log.info("access control is off (set UNITSCOPE_AUTH_USER/PASSWORD or UNITSCOPE_AUTH_TOKEN to turn it on)")
        return False

    def check_credentials() -> Response | None:
        if request.path in OPEN_PATHS:
            return None
        header = request.headers.get("Authorization")
        if is_authorized(header, user, password, token):
            return None
        if header:
            log.warning("rejected credentials for %s %s from %s", request.method, request.path, request.remote_addr)
        return _challenge()

    # first in line: before Dash's own before_request hooks and any route
    server.before_request_funcs.setdefault(None, []).insert(0, check_credentials)
    log.info(
        "access control is on (%s)", " and ".join(k for k, v in (("basic auth", user), ("bearer token", token)) if v)
    )
    return True
