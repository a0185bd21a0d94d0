"""Optional access control for a shared server: HTTP basic auth and/or a bearer token, from the environment.

Off by default (local use). Set `UNITSCOPE_AUTH_USER` and `UNITSCOPE_AUTH_PASSWORD` to require basic auth,
and/or `UNITSCOPE_AUTH_TOKEN` to accept `Authorization: Bearer <token>` (scripts, curl). When any of them is
set, every route of the Flask server is covered -- pages, `/_dash-*` (layout, dependencies, callbacks),
`/export/*`, `/stimulus/*`, `/assets/*`, component bundles -- except `/health`.

Why `/health` stays open: container health checks, load balancers and uptime monitors call it without
credentials, and it reveals only the build id and per-table row counts (no data). Only the exact path is
open; any other spelling falls under the check. Put the site behind the lab's own login (nginx, SSO)
instead when that matters; docs/deploy.md shows both.

Browsers send basic-auth credentials again with every same-origin request after the first prompt, so the
Dash renderer's XHRs (`/_dash-update-component`) and the export links work without further prompts.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os

from flask import Flask, Response, request

from backend.config import Settings

log = logging.getLogger(__name__)

#: Paths served without credentials (exact match).
OPEN_PATHS = frozenset({"/health"})
REALM = "Unitscope"
_EXTENSION_KEY = "unitscope_auth"


class AuthConfigError(ValueError):
    """Access control is half configured (e.g. a user without a password): refuse to start."""


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison (no timing oracle on the secret)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` header, or None when absent or malformed."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def parse_bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def auth_token(settings: Settings) -> str:
    """The bearer token: `settings.auth_token` when Settings has it, else `UNITSCOPE_AUTH_TOKEN`."""
    return getattr(settings, "auth_token", None) or os.environ.get("UNITSCOPE_AUTH_TOKEN", "")


def is_authorized(header: str | None, user: str, password: str, token: str) -> bool:
    """Whether an Authorization header carries the configured basic credentials or token."""
    if user and password:
        creds = parse_basic(header)
        # compare both parts always, so a wrong user costs as long as a wrong password
        if creds is not None and _same(creds[0], user) & _same(creds[1], password):
            return True
    if token:
        given = parse_bearer(header)
        if given is not None and _same(given, token):
            return True
    return False


def _challenge() -> Response:
    resp = Response("authentication required: log in with the lab's Unitscope user and password\n",
                    status=401, mimetype="text/plain")
    resp.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def install_auth(server: Flask, settings: Settings) -> bool:
    """Require credentials on every route but `/health` when the environment configures them.

    Returns whether access control is on. Idempotent (a second call on the same server does nothing).
    Raises AuthConfigError for a user without a password or a password without a user, so a
    misconfigured server refuses to start instead of running open.
    """
    if _EXTENSION_KEY in server.extensions:
        return bool(server.extensions[_EXTENSION_KEY])
    user, password, token = settings.auth_user, settings.auth_password, auth_token(settings)
    if bool(user) != bool(password):
        raise AuthConfigError("set both UNITSCOPE_AUTH_USER and UNITSCOPE_AUTH_PASSWORD (or neither); "
                              "only one of them is set")
    enabled = bool(user or token)
    server.extensions[_EXTENSION_KEY] = enabled
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
    log.info("access control is on (%s)", " and ".join(
        k for k, v in (("basic auth", user), ("bearer token", token)) if v))
    return True
