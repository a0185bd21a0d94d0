"""One frozen configuration object, read from the environment (see `.env.sample`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None


def _env_path(name: str) -> Path | None:
    raw = os.environ.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the environment variable that sets it.

    data_dir    UNITSCOPE_DATA        folder holding the database, models and caches (default: data/)
    db_path     UNITSCOPE_DB          the served DuckDB file (default: <data_dir>/unitscope.duckdb)
    cache_type  UNITSCOPE_CACHE       "filesystem" (default), "redis" or "null"
    redis_url   UNITSCOPE_REDIS_URL   used when cache_type is "redis"
    host, port  UNITSCOPE_HOST/PORT   where `python app.py` listens (default 127.0.0.1:8050)
    debug       UNITSCOPE_DEBUG       Dash debug mode (default off)
    log_level   UNITSCOPE_LOG_LEVEL   logging level name (default INFO)
    cache_dir   UNITSCOPE_CACHE_DIR   the filesystem cache's folder (default: <data_dir>/cache/app)
    cache_timeout_s UNITSCOPE_CACHE_TIMEOUT  seconds a cached value lives (default 3600)
    auth_user, auth_password  UNITSCOPE_AUTH_USER/PASSWORD  HTTP basic auth on every route but /health
                                      (both or neither; default: off)
    auth_token  UNITSCOPE_AUTH_TOKEN  accept `Authorization: Bearer <token>` (scripts; default: off)

    The offline job (python -m precompute):
    memory_gb       UNITSCOPE_MEMORY_GB        matching memory budget in GiB (default: half of this machine's RAM)
    engine_lock     UNITSCOPE_ENGINE_LOCK      lock file matching jobs on the default budget share (default:
                                               <temp dir>/unitscope-engine.lock)
    dask_scheduler  UNITSCOPE_DASK_SCHEDULER   `batch --executor dask` scheduler address (default: a local cluster)
    results_dir     UNITSCOPE_RESULTS_DIR      folder shared with Dask workers (default: beside the database)
    worker_results, worker_data  UNITSCOPE_WORKER_RESULTS/DATA  on a worker: where it sees the results folder
                                               and the data folder, when mounted elsewhere than on the coordinator
    """

    data_dir: Path
    db_path: Path
    cache_type: str
    cache_dir: Path
    redis_url: str
    cache_timeout_s: int
    host: str
    port: int
    debug: bool
    log_level: str
    auth_user: str
    auth_password: str
    auth_token: str
    memory_gb: str = ""
    engine_lock: Path | None = None
    dask_scheduler: str = ""
    results_dir: Path | None = None
    worker_results: str = ""
    worker_data: str = ""

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def weights_cache_dir(self) -> Path:
        return self.data_dir / "cache" / "weights"

    @property
    def export_dir(self) -> Path:
        return self.data_dir / "cache" / "exports"

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(os.environ.get("UNITSCOPE_DATA") or PROJECT_ROOT / "data").expanduser().resolve()
        db_raw = os.environ.get("UNITSCOPE_DB")
        db_path = Path(db_raw).expanduser().resolve() if db_raw else data_dir / "unitscope.duckdb"
        cache_type = os.environ.get("UNITSCOPE_CACHE", "filesystem").strip().lower()
        if cache_type not in {"filesystem", "redis", "null"}:
            raise ValueError(f"UNITSCOPE_CACHE={cache_type!r}: use filesystem, redis or null")
        return cls(
            data_dir=data_dir,
            db_path=db_path,
            cache_type=cache_type,
            cache_dir=Path(os.environ.get("UNITSCOPE_CACHE_DIR") or data_dir / "cache" / "app"),
            redis_url=os.environ.get("UNITSCOPE_REDIS_URL", "redis://localhost:6379/0"),
            cache_timeout_s=_env_int("UNITSCOPE_CACHE_TIMEOUT", 3600),
            host=os.environ.get("UNITSCOPE_HOST", "127.0.0.1"),
            port=_env_int("UNITSCOPE_PORT", 8050),
            debug=_env_bool("UNITSCOPE_DEBUG", False),
            log_level=os.environ.get("UNITSCOPE_LOG_LEVEL", "INFO").upper(),
            auth_user=os.environ.get("UNITSCOPE_AUTH_USER", ""),
            auth_password=os.environ.get("UNITSCOPE_AUTH_PASSWORD", ""),
            auth_token=os.environ.get("UNITSCOPE_AUTH_TOKEN", ""),
            memory_gb=os.environ.get("UNITSCOPE_MEMORY_GB", "").strip(),
            engine_lock=_env_path("UNITSCOPE_ENGINE_LOCK"),
            dask_scheduler=os.environ.get("UNITSCOPE_DASK_SCHEDULER", "").strip(),
            results_dir=_env_path("UNITSCOPE_RESULTS_DIR"),
            worker_results=os.environ.get("UNITSCOPE_WORKER_RESULTS", ""),
            worker_data=os.environ.get("UNITSCOPE_WORKER_DATA", ""),
        )


def get_settings() -> Settings:
    """Settings from the current environment (read anew each call: tests change the environment)."""
    return Settings.from_env()
