#!/usr/bin/env bash
# Idempotent set-up on Debian 12: QGIS from Debian's packages, the engine's own environment and the QGIS-side test
# environment. A second run only checks and takes seconds.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

APT_PACKAGES=(qgis python3-qgis qgis-providers python3-venv python3-pip xvfb xauth)

missing_packages() {
  local pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || printf '%s ' "$pkg"
  done
}

install_qgis() {
  local missing
  missing="$(missing_packages)"
  [ -z "$missing" ] && return 0
  log "Installing from Debian's packages: $missing"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { log "Need root (or sudo) to install: $missing"; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

build_env() {  # build_env DIR LOCK [venv options...]: a venv from the base Python with exactly the lock installed
  local dir="$1" lock="$2"; shift 2
  [ -f "$dir/.landprobe-complete" ] && return 0
  log "Creating $dir from $(basename "$lock") (the first time takes a few minutes)"
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  "$BASE_PYTHON" -m venv "$@" "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    -r "$lock" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }
  if [ "$*" != "--system-site-packages" ]; then  # Debian's own packages do not all pass pip check
    "$dir/bin/python" -m pip check >&2 || { log "pip check failed in $dir"; exit 1; }
  fi
  date -u +%FT%TZ > "$dir/.landprobe-complete"
}

install_qgis
build_env "$ENGINE_ENV" "$ENGINE_LOCK"
build_env "$QGIS_TEST_ENV" "$QGIS_TEST_LOCK" --system-site-packages
mkdir -p "$(dirname "$ENGINE_RECORD")"
if [ "$(cat "$ENGINE_RECORD" 2>/dev/null)" != "$ENGINE_PYTHON" ]; then
  echo "$ENGINE_PYTHON" > "$ENGINE_RECORD"
  log "Recorded the engine's Python in $ENGINE_RECORD (the plugin reads it; LANDPROBE_PYTHON overrides it)"
fi
log "Engine Python: $ENGINE_PYTHON"
