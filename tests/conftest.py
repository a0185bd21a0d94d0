"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
from pathlib import Path

# The app's cache is configured at import: tests run without one unless they ask for it.
os.environ.setdefault("UNITSCOPE_CACHE", "null")

import pytest

from precompute.datasets.writer import write_dataset
from precompute.store import Store
from tests.factories import mini_tables


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data" / "unitscope.duckdb")


@pytest.fixture
def mini_db(store: Store) -> Store:
    """A published miniature database with one dataset ("mini")."""
    write_dataset(store, "mini", mini_tables())
    return store


@pytest.fixture
def app_env(mini_db: Store, monkeypatch, tmp_path: Path) -> Store:
    """Point the app at the miniature database (and a private cache folder)."""
    monkeypatch.setenv("UNITSCOPE_DB", str(mini_db.served_path))
    monkeypatch.setenv("UNITSCOPE_DATA", str(mini_db.served_path.parent))
    monkeypatch.setenv("UNITSCOPE_CACHE", "null")
    return mini_db
