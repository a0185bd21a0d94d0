"""Browser tests: the real app in a real headless Chromium (dash_duo), on the miniature database."""

from __future__ import annotations

import importlib

import pytest


@pytest.fixture
def dash_app(app_env):
    module = importlib.import_module("app")
    return module.app


def console_errors(dash_duo) -> list[dict]:
    """Browser console entries at warning level or worse (an empty console is required)."""
    return [entry for entry in dash_duo.get_logs() or [] if entry.get("level") in ("SEVERE", "WARNING")]
