#!/usr/bin/env bash
# Quick start, command 1: set everything up, start (or resume) the demo build when the database is
# missing or incomplete, and serve the dashboard at once on http://127.0.0.1:8050. Pages fill in as
# the build publishes each step. Ctrl-C stops both; running it again resumes the build.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(bash scripts/bootstrap.sh)"
py="$venv/bin/python"
export UNITSCOPE_DATA="${UNITSCOPE_DATA:-$PWD/data}"
mkdir -p "$UNITSCOPE_DATA/logs"
log="$UNITSCOPE_DATA/logs/precompute.log"

if "$py" -m precompute demo --status >/dev/null 2>&1; then
  echo "[up] the demo build is complete"
else
  echo "[up] building the demo in the background (progress: tail -f $log)"
  "$py" -m precompute demo "$@" >>"$log" 2>&1 &
  build_pid=$!
  trap 'kill "$build_pid" 2>/dev/null || true' EXIT
fi
echo "[up] Unitscope at http://${UNITSCOPE_HOST:-127.0.0.1}:${UNITSCOPE_PORT:-8050}"
"$py" app.py
