"""The shell's build-status callback: a first publish reloads, later ones offer a reload."""

from __future__ import annotations

import importlib


def shell():
    importlib.import_module("app")
    return importlib.import_module("components.shell")


def test_missing_database_says_building(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITSCOPE_DB", str(tmp_path / "none.duckdb"))
    badge, seen, _ = shell().update_build_status(1, None, "/dataset")
    assert badge.children == "no database yet: building…" and seen == "missing"


def test_first_publish_reloads_and_later_publish_offers_reload(app_env):
    mod = shell()
    _, seen, href = mod.update_build_status(1, "missing", "/dataset?x=1")
    assert href == "/dataset?x=1" and seen != "missing"
    badge, same, _ = mod.update_build_status(2, seen, "/dataset?x=1")
    assert same == seen and badge.children == f"build {seen[:8]}" and badge.title == f"build id {seen}"
    app_env.publish()
    badge, kept, _ = mod.update_build_status(3, seen, "/dataset?x=1")
    assert badge.id == "reload-link" and badge.href == "/dataset?x=1" and kept == seen
    assert badge.children.children == "new results published: reload"
