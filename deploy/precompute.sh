#!/usr/bin/env bash
# The precompute container's entry point (a one-shot job): bring the database up to date, then exit.
#
#   UNITSCOPE_DEMO    demo build to start or resume when it is missing or incomplete:
#                     default | quick | full | off (default: default)
#   UNITSCOPE_BATCH   a batch TOML file, or a folder whose *.toml files run in name order
#                     (`python -m precompute batch FILE`; paths inside are relative to each file);
#                     empty: none. In compose it is the lab folder mounted at /lab.
# Every step publishes atomically, so the app serves each result as soon as it is done; a killed job
# leaves the served database as it was and a restart resumes (done steps are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python}"
demo="${UNITSCOPE_DEMO:-default}"
batch="${UNITSCOPE_BATCH:-}"

case "$demo" in
  off|none|"") ;;
  default|quick|full)
    flag=()
    [[ "$demo" != default ]] && flag=("--$demo")
    if "$py" -m precompute demo "${flag[@]}" --status >/dev/null 2>&1; then
      echo "[precompute] the $demo demo build is complete" >&2
    else
      echo "[precompute] starting (or resuming) the $demo demo build" >&2
      "$py" -m precompute demo "${flag[@]}"
    fi
    ;;
  *) echo "[precompute] UNITSCOPE_DEMO=$demo: use default, quick, full or off" >&2; exit 2 ;;
esac

if [[ -n "$batch" ]]; then
  files=()
  if [[ -d "$batch" ]]; then
    while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$batch" -maxdepth 1 -name '*.toml' -print0 | sort -z)
    [[ ${#files[@]} -eq 0 ]] && echo "[precompute] no *.toml batch file in $batch" >&2
  elif [[ -f "$batch" ]]; then
    files=("$batch")
  else
    echo "[precompute] UNITSCOPE_BATCH=$batch is neither a file nor a folder" >&2
    exit 2
  fi
  for f in "${files[@]}"; do
    echo "[precompute] batch $f" >&2
    "$py" -m precompute batch "$f"
  done
fi
echo "[precompute] done" >&2
