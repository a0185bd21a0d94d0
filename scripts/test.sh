#!/usr/bin/env bash
# Quick start, command 2: set everything up (Python environment, Chromium for the browser tests), check
# the code with ruff, and run the whole test suite. Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -x).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "[test] installing Debian's chromium and chromium-driver for the browser tests" >&2
  sudo=""
  [[ "$(id -u)" != 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
venv="$(bash scripts/bootstrap.sh --dev)"
# the habits CI keeps before any test: ruff's lint (with its complexity and argument limits) and format
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
exec "$venv/bin/python" -m pytest --headless "$@"
