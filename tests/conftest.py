"""Fixtures shared by every test layer."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# The app's cache is configured at import: tests run without one unless they ask for it.
os.environ.setdefault("UNITSCOPE_CACHE", "null")
# Matching at the default memory budget takes a machine-wide lock (precompute.match.engine). The suite
# (and every process it starts) gets a lock of its own: a build running elsewhere on this machine must
# never make a test wait for it, or time out.
if "UNITSCOPE_ENGINE_LOCK" not in os.environ:
    _engine_lock_dir = tempfile.mkdtemp(prefix="unitscope-tests-")
    atexit.register(shutil.rmtree, _engine_lock_dir, ignore_errors=True)
    os.environ["UNITSCOPE_ENGINE_LOCK"] = os.path.join(_engine_lock_dir, "engine.lock")

import pytest

from precompute.core.store import Store
from precompute.datasets.writer import write_dataset
from tests.support.factories import mini_tables


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data" / "unitscope.duckdb")


@pytest.fixture(scope="session")
def _templates(tmp_path_factory) -> dict[str, Path]:
    """Miniature databases built once per session with the real writer; tests get fresh copies."""
    from tests.support.factories import write_toy_results, write_toy_scores

    mini = Store(tmp_path_factory.mktemp("template-mini") / "unitscope.duckdb")
    write_dataset(mini, "mini", mini_tables())
    results = Store(tmp_path_factory.mktemp("template-results") / "unitscope.duckdb")
    shutil.copyfile(mini.served_path, results.served_path)
    write_toy_results(results, model="toy")
    write_toy_results(results, model="toy2", seed=1)
    write_toy_scores(results)
    return {"mini": mini.served_path, "results": results.served_path}


def _copy_of(template: Path, store: Store) -> Store:
    store.served_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, store.served_path)
    return store


@pytest.fixture
def mini_db(store: Store, _templates) -> Store:
    """A published miniature database with one dataset ("mini")."""
    return _copy_of(_templates["mini"], store)


@pytest.fixture
def app_env(mini_db: Store, monkeypatch, tmp_path: Path) -> Store:
    """Point the app at the miniature database (and a private cache folder)."""
    monkeypatch.setenv("UNITSCOPE_DB", str(mini_db.served_path))
    monkeypatch.setenv("UNITSCOPE_DATA", str(mini_db.served_path.parent))
    monkeypatch.setenv("UNITSCOPE_CACHE", "null")
    return mini_db


@pytest.fixture
def results_env(app_env: Store, _templates) -> Store:
    """The miniature database with two toy models matched on it (brute-force match tables)."""
    return _copy_of(_templates["results"], app_env)
