"""Plain HTTP routes beside the Dash pages: stimulus images and the health check."""

from __future__ import annotations

import logging

from flask import Flask, Response, abort, g, jsonify

from backend import data, queries
from backend.db import DatabaseMissingError

log = logging.getLogger(__name__)


def register_routes(server: Flask) -> None:
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
        return jsonify({
            "status": "ok",
            "build_id": info.get("build_id"),
            "schema_version": info.get("schema_version"),
            "published_at": info.get("published_at"),
            "rows": counts,
        }), 200
