#!/usr/bin/env bash
# Re-resolves requirements/engine.in in a throw-away venv and writes every installed version to engine.lock.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$BASE_PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet -r "$ROOT/requirements/engine.in"
{
  echo "# Generated from requirements/engine.in by 'make lock' with Python 3.11 (pip freeze). Do not edit by hand."
  "$tmp/venv/bin/python" -m pip freeze
} > "$ENGINE_LOCK"
log "Wrote $ENGINE_LOCK"
