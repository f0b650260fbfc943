# Shared settings for the set-up, demo and test scripts. Source it; do not run it.
# The environments live outside the work tree, keyed by their lock files, so that every clone (and CI) reuses them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LANDPROBE_HOME="${LANDPROBE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/landprobe}"
# Debian's Python: the one QGIS runs on, and the base of both environments.
BASE_PYTHON="${LANDPROBE_BASE_PYTHON:-/usr/bin/python3}"
ENGINE_LOCK="$ROOT/requirements/engine.lock"
QGIS_TEST_LOCK="$ROOT/requirements/qgis-test.lock"

lock_key() {  # a short key from a lock file and the base Python's version
  { cat "$1"; "$BASE_PYTHON" -c 'import sys; print(sys.version)' 2>/dev/null || true; } | sha256sum | cut -c1-12
}

ENGINE_ENV="$LANDPROBE_HOME/envs/engine-$(lock_key "$ENGINE_LOCK")"
QGIS_TEST_ENV="$LANDPROBE_HOME/envs/qgis-test-$(lock_key "$QGIS_TEST_LOCK")"
ENGINE_PYTHON="$ENGINE_ENV/bin/python"
QGIS_TEST_PYTHON="$QGIS_TEST_ENV/bin/python"
# Where the plugin looks for the engine's Python when neither LANDPROBE_PYTHON nor the Processing setting is set.
ENGINE_RECORD="${XDG_DATA_HOME:-$HOME/.local/share}/landprobe/engine-python"

log() { printf '\033[1m[landprobe]\033[0m %s\n' "$*" >&2; }

qgis_process_bin() {  # the real binary: Debian's wrapper passes an option that 3.22 rejects (qgis/QGIS#57683)
  if command -v qgis_process.bin >/dev/null 2>&1; then command -v qgis_process.bin; else command -v qgis_process; fi
}
