#!/usr/bin/env bash
# Runs the tests: `scripts/test.sh [lint|engine|fast|plugin]...` (lint, engine and plugin when none is named).
# `fast` is the engine tests without those marked slow (the list in tests/engine/conftest.py). Expects `make setup`.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(lint engine plugin)
results="$(mktemp -d)"
status=0
export LANDPROBE_PYTHON="$ENGINE_PYTHON"
for part in "${parts[@]}"; do
  case "$part" in
    lint)
      log "ruff"
      "$ENGINE_ENV/bin/ruff" check engine plugin tests scripts __init__.py || status=1
      log "Layers contract (scripts/check_layers.py)"
      "$ENGINE_PYTHON" scripts/check_layers.py || status=1 ;;
    engine)
      log "Engine tests (engine's Python, no QGIS)"
      "$ENGINE_PYTHON" -m pytest tests/engine --junitxml="$results/engine.xml" || status=1 ;;
    fast)
      log "Fast engine tests (engine's Python, no QGIS; not marked slow)"
      # --durations-min: names any test over the 1 s rule, a candidate for the slow list
      "$ENGINE_PYTHON" -m pytest tests/engine -m "not slow" --durations=0 --durations-min=1 \
        --junitxml="$results/engine-fast.xml" || status=1 ;;
    plugin)
      log "Plugin tests (QGIS $(dpkg-query -W -f='${Version}' qgis 2>/dev/null), pytest-qgis and qgis_process)"
      QT_QPA_PLATFORM=offscreen "$QGIS_TEST_PYTHON" -m pytest tests/plugin --junitxml="$results/plugin.xml" \
        -p no:cacheprovider -o qgis_gui_enabled=false || status=1 ;;
    *) log "unknown test part: $part"; exit 2 ;;
  esac
done
"$ENGINE_PYTHON" "$ROOT/scripts/junit_summary.py" "$results"/*.xml 2>/dev/null || true
exit $status
