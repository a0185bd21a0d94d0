"""Server-side cache of backend functions, keyed by the database build id.

FileSystemCache by default (shared by a server's worker processes), Redis when configured, and no
cache at all outside the app (notebooks, tests). The build id is part of every key, so a new publish
can never be answered from an old build's entry ("a stale hit costs a wrong score that looks normal").
"""

from __future__ import annotations

import functools
import hashlib
import logging
import pickle
from collections.abc import Callable
from typing import Any, TypeVar

from flask_caching import Cache

from backend.config import Settings

log = logging.getLogger(__name__)

cache = Cache()
_state = {"enabled": False}

F = TypeVar("F", bound=Callable[..., Any])


def init_cache(server, settings: Settings) -> None:
    """Attach the cache to the Flask server of the app (called once by app.py)."""
    if settings.cache_type == "redis":
        config = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": settings.redis_url}
    elif settings.cache_type == "null":
        _state["enabled"] = False
        return
    else:
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        config = {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(settings.cache_dir), "CACHE_THRESHOLD": 5000}
    config["CACHE_DEFAULT_TIMEOUT"] = settings.cache_timeout_s
    cache.init_app(server, config=config)
    _state["enabled"] = True
    _state["app"] = server


def cache_key(name: str, build_id: str, args: tuple, kwargs: dict) -> str:
    blob = pickle.dumps((args, sorted(kwargs.items())), protocol=4)
    return f"unitscope:{build_id}:{name}:{hashlib.sha1(blob).hexdigest()}"


def cached(build_id_fn: Callable[[], str]) -> Callable[[F], F]:
    """Memoise a function on (its arguments, the current build id) when the app's cache is on."""

    def decorate(fn: F) -> F:
        name = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if not _state["enabled"]:
                return fn(*args, **kwargs)
            key = cache_key(name, build_id_fn(), args, kwargs)
            with _state["app"].app_context():
                hit = cache.get(key)
                if hit is not None:
                    return hit
                value = fn(*args, **kwargs)
                if value is not None:
                    cache.set(key, value)
                return value

        wrapper.uncached = fn  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
