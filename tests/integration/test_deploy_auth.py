"""Access control (backend/auth.py, installed by routes.py) on a plain Flask server: every route, /health open."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from flask import Flask

from backend.auth import AuthConfigError, is_authorized, parse_basic, parse_bearer
from backend.config import Settings
from routes import install_auth


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _settings(monkeypatch, user="", password="", token="") -> Settings:
    monkeypatch.setenv("UNITSCOPE_AUTH_TOKEN", token)
    return dataclasses.replace(Settings.from_env(), auth_user=user, auth_password=password)


def _server() -> Flask:
    server = Flask("t")
    for rule in ("/", "/health", "/_dash-layout", "/export/<name>.<fmt>", "/stimulus/<d>/<s>.png", "/assets/<path:p>"):
        server.add_url_rule(rule, rule, lambda **_: "content", methods=["GET", "POST"])
    return server


def test_parse_headers():
    assert parse_basic(_basic("lab", "p:w é")) == ("lab", "p:w é")
    assert parse_basic("basic " + base64.b64encode(b"u:").decode()) == ("u", "")
    for bad in (None, "", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(), "Bearer x"):
        assert parse_basic(bad) is None
    assert parse_bearer("Bearer abc ") == "abc"
    assert parse_bearer("bearer abc") == "abc"
    assert parse_bearer("Basic abc") is None and parse_bearer("Bearer ") is None and parse_bearer(None) is None


def test_is_authorized_needs_both_parts():
    assert is_authorized(_basic("lab", "pw"), "lab", "pw", "")
    assert not is_authorized(_basic("lab", "PW"), "lab", "pw", "")
    assert not is_authorized(_basic("LAB", "pw"), "lab", "pw", "")
    assert not is_authorized("Bearer pw", "lab", "pw", "")  # the password is not a token
    assert is_authorized("Bearer tok", "lab", "pw", "tok") and is_authorized("Bearer tok", "", "", "tok")
    assert not is_authorized(None, "lab", "pw", "tok")
    assert not is_authorized(_basic("", ""), "", "", "")  # nothing configured: nothing authorises


def test_off_by_default(monkeypatch):
    server = _server()
    assert install_auth(server, _settings(monkeypatch)) is False
    client = server.test_client()
    assert client.get("/").status_code == 200 and client.post("/_dash-layout").status_code == 200


@pytest.mark.parametrize("user,password", [("lab", ""), ("", "secret")])
def test_half_configured_refuses_to_start(monkeypatch, user, password):
    with pytest.raises(AuthConfigError, match="UNITSCOPE_AUTH_USER and UNITSCOPE_AUTH_PASSWORD"):
        install_auth(_server(), _settings(monkeypatch, user, password))


def test_every_route_but_health_is_covered(monkeypatch):
    server = _server()
    assert install_auth(server, _settings(monkeypatch, "lab", "s3cret", token="tok-123"))
    assert install_auth(server, _settings(monkeypatch)) is True  # idempotent: the first call's settings stay
    client = server.test_client()
    paths = [
        "/",
        "/_dash-layout",
        "/export/sites-scatter.csv?dataset=x",
        "/stimulus/d/s.png",
        "/assets/app.css",
        "/no-such-route",
        "/health/",
        "//health",
        "/HEALTH",
    ]
    for path in paths:
        for method in ("GET", "POST"):
            resp = client.open(path, method=method)
            assert resp.status_code == 401, (method, path)
            assert resp.headers["WWW-Authenticate"].startswith('Basic realm="Unitscope"')
            assert b"content" not in resp.data
    good = {"Authorization": _basic("lab", "s3cret")}
    for path in ("/", "/_dash-layout", "/export/sites-scatter.csv", "/stimulus/d/s.png", "/assets/app.css"):
        assert client.get(path, headers=good).status_code == 200, path
        assert client.get(path, headers={"Authorization": "Bearer tok-123"}).status_code == 200, path
        assert client.get(path, headers={"Authorization": _basic("lab", "wrong")}).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer tok-12"}).status_code == 401, path
    assert client.get("/health").status_code == 200  # open: health checks carry no credentials
