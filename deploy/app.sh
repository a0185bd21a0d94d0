#!/usr/bin/env bash
# The app container's entry point: wait for precompute's first publish, then serve with gunicorn.
#
#   UNITSCOPE_DATA / UNITSCOPE_DB   where the served database is (default /data/unitscope.duckdb)
#   UNITSCOPE_WAIT_S                give up waiting after this many seconds (default 0: wait for ever)
#   GUNICORN_* and UNITSCOPE_HOST/PORT: see deploy/gunicorn_conf.py
# Extra arguments go to gunicorn. The app itself copes with a missing database (its shell reloads on
# the first publish), but a health check that fails while there is nothing to show is what we want.
set -euo pipefail
cd "$(dirname "$0")/.."
db="${UNITSCOPE_DB:-${UNITSCOPE_DATA:-$PWD/data}/unitscope.duckdb}"
wait_s="${UNITSCOPE_WAIT_S:-0}"
start=$SECONDS
if [[ ! -f "$db" ]]; then
  echo "[app] waiting for the first publish of $db (the precompute service builds it)" >&2
  until [[ -f "$db" ]]; do
    if (( wait_s > 0 && SECONDS - start >= wait_s )); then
      echo "[app] no database at $db after ${wait_s} s: is the precompute service running?" >&2
      exit 1
    fi
    sleep 2
  done
  echo "[app] $db published after $((SECONDS - start)) s" >&2
fi
exec "${PYTHON:-python}" -m gunicorn -c deploy/gunicorn_conf.py "$@" app:server
