"""Optional access control for a shared server: HTTP basic auth and/or a bearer token (Settings).

The checks live here; routes.py (the shell's HTTP module) puts them in front of every route.

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

#: Paths served without credentials (exact match).
OPEN_PATHS = frozenset({"/health"})
REALM = "Unitscope"


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


def check_config(user: str, password: str) -> None:
    """Raise AuthConfigError for a user without a password or a password without a user, so a
    misconfigured server refuses to start instead of running open."""
    if bool(user) != bool(password):
        raise AuthConfigError(
            "set both UNITSCOPE_AUTH_USER and UNITSCOPE_AUTH_PASSWORD (or neither); only one of them is set"
        )
