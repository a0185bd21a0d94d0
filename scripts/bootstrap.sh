#!/usr/bin/env bash
# Build (or reuse) the Python environment for Unitscope and link it as .venv.
#
# The venv lives outside the clone, keyed by a hash of the requirement files and the Python version,
# so a second clone or a CI rerun reuses it; a changed requirement builds a new one from nothing.
#   UNITSCOPE_PYTHON   interpreter to build with (default: python3.11, else python3)
#   UNITSCOPE_VENV     use exactly this venv folder instead
#   --dev              include the test tools (pytest, dash[testing], ruff)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

py="${UNITSCOPE_PYTHON:-$(command -v python3.11 || command -v python3)}"
pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$pyver" != "3.11" && "$pyver" != "3.12" ]]; then
  echo "Unitscope needs Python 3.11 or 3.12; $py is $pyver. Set UNITSCOPE_PYTHON to one." >&2
  exit 1
fi
hash="$(cat requirements.txt requirements-dev.txt constraints.txt | { cat; echo "$pyver"; } | sha256sum | cut -c1-16)"
venv="${UNITSCOPE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/unitscope/venv-$hash}"
marker="$venv/.unitscope-ready-$([[ $dev == 1 ]] && echo dev || echo run)"

if [[ ! -f "$marker" ]]; then
  echo "[bootstrap] building the Python environment in $venv (first run: a few minutes)" >&2
  [[ -x "$venv/bin/python" ]] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2 || true
  req=requirements.txt
  [[ $dev == 1 ]] && req=requirements-dev.txt
  "$venv/bin/python" -m pip install -q -r "$req" -c constraints.txt >&2
  touch "$marker"
  # a dev environment also serves for running
  [[ $dev == 1 ]] && touch "$venv/.unitscope-ready-run"
fi
ln -sfn "$venv" .venv
echo "$venv"
